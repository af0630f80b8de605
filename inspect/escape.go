package inspect

import (
	"strconv"
	"unicode/utf8"
)

// Printable returns s as a terminal can show it without acting on it: every
// C0 control byte, DEL, C1 control and other character that strconv.IsPrint
// refuses (format characters such as U+202E RIGHT-TO-LEFT OVERRIDE, line and
// paragraph separators, spaces other than U+0020), and every byte that is not
// part of valid UTF-8, is written as the escape Go's %q would use: "\x1b",
// "\a", "\n", "\u009b", "\x9b" for a stray byte. Printable characters,
// backslash and quotes included, are left as they are, so readable text is
// unchanged; an escape in the output may therefore also be literal text of
// the input. JSON outputs carry the true value; this is for people.
//
// Every text output of tlsresume (the console, inspect's table, report, diff
// and the CLI's messages) shows peer- and file-controlled strings through
// Printable: SNI, ALPN, User-Agent and the error texts that embed them.
// Strings with nothing to escape are returned as they are, without
// allocating.
func Printable(s string) string {
	i := unprintableAt(s)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	return string(appendPrintable(b, s[i:]))
}

// unprintableAt is the offset of the first byte of s that Printable
// escapes, or -1.
func unprintableAt(s string) int {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !strconv.IsPrint(r) {
			return i
		}
		i += n
	}
	return -1
}

// appendPrintable appends s to b with the escapes Printable makes.
func appendPrintable(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = appendHex(append(b, `\x`...), uint32(s[i]), 2)
		case r < ' ' || r == 0x7f:
			b = appendControl(b, byte(r))
		case r < utf8.RuneSelf || strconv.IsPrint(r):
			b = append(b, s[i:i+n]...)
		case r < 0x10000:
			b = appendHex(append(b, `\u`...), uint32(r), 4)
		default:
			b = appendHex(append(b, `\U`...), uint32(r), 8)
		}
		i += n
	}
	return b
}

// appendControl writes a C0 control or DEL as Go does in a quoted string.
func appendControl(b []byte, c byte) []byte {
	switch c {
	case '\a':
		return append(b, `\a`...)
	case '\b':
		return append(b, `\b`...)
	case '\f':
		return append(b, `\f`...)
	case '\n':
		return append(b, `\n`...)
	case '\r':
		return append(b, `\r`...)
	case '\t':
		return append(b, `\t`...)
	case '\v':
		return append(b, `\v`...)
	}
	return appendHex(append(b, `\x`...), uint32(c), 2)
}

// appendHex appends v as digits lowercase hex digits.
func appendHex(b []byte, v uint32, digits int) []byte {
	const hex = "0123456789abcdef"
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b = append(b, hex[v>>uint(shift)&0xf])
	}
	return b
}
