package inspect

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestPrintable: controls, C1, DEL, non-printing characters and stray bytes
// are shown as Go's %q shows them; printable text is left as it is.
func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"api.example.com", "api.example.com"},
		{`C:\dir "quoted"`, `C:\dir "quoted"`}, // printable: unchanged
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{tlstest.HostileSNI, tlstest.HostileSNIShown},
		{tlstest.HostileALPN, tlstest.HostileALPNShown},
		{tlstest.HostileUserAgent, tlstest.HostileUserAgentShown},
		{"a\tb\nc\rd\x00e\x1f", `a\tb\nc\rd\x00e\x1f`},
		{"\a\b\f\v\x7f", `\a\b\f\v\x7f`},
		{"\u0080\u009f", `\u0080\u009f`},
		{"bad\x9bbyte\xff", `bad\x9bbyte\xff`},         // not UTF-8: each byte
		{"cut\xe2\x82", `cut\xe2\x82`},                 // a rune cut short
		{"\u202egnp.exe", `\u202egnp.exe`},             // right-to-left override
		{"a\u00a0b\u2028c", `a\u00a0b\u2028c`},         // no-break space, line separator
		{"\U000e0001tag", `\U000e0001tag`},             // a format character beyond the BMP
		{"\ufffd is printable", "\ufffd is printable"}, // U+FFFD itself, well encoded
		{"end\x1b", `end\x1b`},
	}
	for _, tt := range tests {
		got := Printable(tt.in)
		if got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		tlstest.CheckTerminal(t, strconv.Quote(tt.in), got, false)
	}
}

// TestPrintableNoAlloc: text with nothing to escape is returned without
// allocating; the console calls Printable for every line it writes.
func TestPrintableNoAlloc(t *testing.T) {
	s := strings.Repeat("curl/8.5.0 (127.0.0.1:41234) → origin.test:443 ✓ ", 4)
	if n := testing.AllocsPerRun(100, func() { _ = Printable(s) }); n != 0 {
		t.Errorf("Printable of printable text: %v allocations, want 0", n)
	}
}

func BenchmarkPrintable(b *testing.B) {
	for _, bm := range []struct{ name, s string }{
		{"printable", "127.0.0.1:41234 → api.example.com:443  client: resumed with a TLS 1.3 PSK; upstream: resumed"},
		{"hostile", "127.0.0.1:41234 → " + tlstest.HostileSNI + ":443  x509: certificate is valid for a.test, not " + tlstest.HostileSNI},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.s)))
			b.ReportAllocs()
			for b.Loop() {
				_ = Printable(bm.s)
			}
		})
	}
}

// FuzzPrintable: the output is valid UTF-8 of printable characters only;
// printable input comes back unchanged; escaping twice changes nothing; and
// the escapes are Go's: without backslashes or quotes in the input, the
// output unquotes to the input, byte for byte.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"", "api.example.com", tlstest.HostileSNI, tlstest.HostileALPN, tlstest.HostileUserAgent,
		"bad\x9b\xff", "\u202e", "\U000e0001", "\ufffd", "日本\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Printable(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Printable(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if !strconv.IsPrint(r) {
				t.Fatalf("Printable(%q) = %q: holds %U", s, got, r)
			}
		}
		if problem := tlstest.TerminalHazard(got, false); problem != "" {
			t.Fatalf("Printable(%q) = %q: %s", s, got, problem)
		}
		if printable(s) && got != s {
			t.Fatalf("Printable(%q) = %q: printable input changed", s, got)
		}
		if again := Printable(got); again != got {
			t.Fatalf("Printable(Printable(%q)) = %q, not %q", s, again, got)
		}
		if !strings.ContainsAny(s, `\"`) {
			if back, err := strconv.Unquote(`"` + got + `"`); err != nil || back != s {
				t.Fatalf("Printable(%q) = %q unquotes to %q (%v)", s, got, back, err)
			}
		}
	})
}

// printable says whether every rune of s is valid and printable.
func printable(s string) bool {
	for i, r := range s {
		if (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\ufffd")) || !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}
