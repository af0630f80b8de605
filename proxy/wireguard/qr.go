package wireguard

import (
	"fmt"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// qrLevel is the QR error-correction level: Low (7 %), as `qrencode`, which
// the WireGuard documentation uses for wg-quick files, defaults to; a
// configuration of about 300 bytes is then version 11 to 13, 69 to 77
// modules with the quiet zone, which fits a 120-column terminal and a
// phone camera reads off a screen at arm's length.
const qrLevel = qrcode.Low

// QRTerminal returns text as a QR code for a terminal: each character cell
// holds two modules stacked (U+2580 upper half block, U+2584 lower, U+2588
// full), so the code is square in a terminal's tall cells. Light modules
// are drawn in the foreground colour, for the usual light-on-dark
// terminal; invert is for dark-on-light ones. The four-module quiet zone is
// included.
func QRTerminal(text string, invert bool) (string, error) {
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		return "", fmt.Errorf("wireguard: making a QR code: %w", err)
	}
	return halfBlocks(q.Bitmap(), invert), nil
}

// halfBlocks draws bitmap (true = dark module) two rows per line.
func halfBlocks(bitmap [][]bool, invert bool) string {
	glyphs := [4]string{" ", "▄", "▀", "█"} // by upper<<1 | lower, a bit set = drawn
	var b strings.Builder
	for y := 0; y < len(bitmap); y += 2 {
		for x := range bitmap[y] {
			upper := bitmap[y][x] == invert // drawn: light, or dark when inverted
			lower := false
			if y+1 < len(bitmap) {
				lower = bitmap[y+1][x] == invert
			} else {
				lower = !invert // past the last row: the quiet zone's light
			}
			i := 0
			if upper {
				i |= 2
			}
			if lower {
				i |= 1
			}
			b.WriteString(glyphs[i])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// QRPNG returns text as a QR code in a PNG image, 8 pixels per module, for
// the live view's device page.
func QRPNG(text string) ([]byte, error) {
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		return nil, fmt.Errorf("wireguard: making a QR code: %w", err)
	}
	png, err := q.PNG(-8) // a negative size is pixels per module
	if err != nil {
		return nil, fmt.Errorf("wireguard: drawing a QR code: %w", err)
	}
	return png, nil
}
