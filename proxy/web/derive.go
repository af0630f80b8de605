package web

import (
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"unsafe"

	"github.com/tlsresume/tlsresume/inspect"
)

// derivedFields are string fields that the other fields of their struct
// determine, with the function that makes them from the struct. A value
// the function gives back is packed as a mark (derivedMark) and made
// again on unpacking; any other (cut, from another parser) is packed as
// it is. A Chromium shuffles its extensions on every connection
// (Chrome 110), so its JA3 and JA3 hash are new each time: some 175 bytes
// a record that the vocabulary cannot share.
var derivedFields = map[string]func(unsafe.Pointer) string{
	"ClientHelloRecord.JA3":     func(p unsafe.Pointer) string { return ja3Of((*inspect.ClientHelloRecord)(p)) },
	"ClientHelloRecord.JA3Hash": func(p unsafe.Pointer) string { return md5Hex((*inspect.ClientHelloRecord)(p).JA3) },
}

// derivedMark stands for a derived field's value: a string tag for an
// inline string of no bytes, which a field present (not empty) never has.
const derivedMark = 1

// ja3Of is the JA3 string of a hello's record: its version, then its
// cipher suites, extensions, groups and point formats, decimal, joined by
// "-", GREASE left out (inspect/fingerprint.go, appendJA3).
func ja3Of(h *inspect.ClientHelloRecord) string {
	var buf [512]byte
	b := strconv.AppendInt(buf[:0], int64(h.LegacyVersion), 10)
	for _, list := range [][]int{h.CipherSuites, h.Extensions, h.SupportedGroups} {
		b = append(b, ',')
		first := true
		for _, v := range list {
			if inspect.IsGREASE(uint16(v)) && v == int(uint16(v)) {
				continue
			}
			if !first {
				b = append(b, '-')
			}
			first = false
			b = strconv.AppendInt(b, int64(v), 10)
		}
	}
	b = append(b, ',')
	for i, v := range h.ECPointFormats {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(b)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
