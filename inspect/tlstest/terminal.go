package tlstest

import (
	"fmt"
	"testing"
	"unicode/utf8"
)

// This file is for tlsresume's text outputs: hostile strings a peer or a
// file can carry, and a check that a text shows them rather than letting a
// terminal act on them. It does not use the escaper it checks
// (inspect.Printable): it reads the bytes on its own.

// Hostile values a peer can send, and how a text output must show them
// (inspect.Printable's escapes, Go's %q forms).
const (
	// HostileSNI sets the terminal's title (OSC 0 … BEL) and clears the screen.
	HostileSNI            = "\x1b]0;PWNED\x07\x1b[2J"
	HostileSNIShown       = `\x1b]0;PWNED\a\x1b[2J`
	HostileALPN           = "h2\x1b[31m"
	HostileALPNShown      = `h2\x1b[31m`
	HostileUserAgent      = "evil\xc2\x9b2J\x7f/1.0" // U+009B is CSI in C1; then DEL
	HostileUserAgentShown = `evil\u009b2J\x7f/1.0`
)

// CheckTerminal fails tb if out holds anything a terminal acts on: a C0
// control byte other than '\n' (and '\t' when tabs is true), DEL, a C1
// control (U+0080–U+009F), or a byte that is not part of valid UTF-8 (a lone
// 0x9b is CSI to an 8-bit terminal).
func CheckTerminal(tb testing.TB, what, out string, tabs bool) {
	tb.Helper()
	if problem := TerminalHazard(out, tabs); problem != "" {
		tb.Errorf("%s: %s reaches the terminal in:\n%q", what, problem, out)
	}
}

// TerminalHazard says what in out a terminal would act on, the first such
// thing, or "" when there is nothing. Its rules are CheckTerminal's.
func TerminalHazard(out string, tabs bool) string {
	for i := 0; i < len(out); {
		c := out[i]
		r, n := utf8.DecodeRuneInString(out[i:])
		switch {
		case c == '\n' || (c == '\t' && tabs):
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("byte %#02x at offset %d", c, i)
		case r == utf8.RuneError && n == 1:
			return fmt.Sprintf("invalid UTF-8 byte %#02x at offset %d", c, i)
		case r >= 0x80 && r <= 0x9f:
			return fmt.Sprintf("C1 control %U at offset %d", r, i)
		}
		i += n
	}
	return ""
}
