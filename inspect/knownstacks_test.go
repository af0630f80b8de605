package inspect

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestKnownStacksTable: every entry is a JA4 with a source, no two entries
// match the same hellos, and a match ignores what apps and resumption
// change (SNI kind, ALPN, extension count and hash) but not the cipher
// list, the version or the transport.
func TestKnownStacksTable(t *testing.T) {
	for i, s := range KnownStacks {
		switch {
		case !isJA4(s.JA4):
			t.Errorf("%s: %q is not a JA4", s.Name, s.JA4)
		case s.Source == "" || s.Name == "":
			t.Errorf("%s: no name or no source", s.JA4)
		}
		for _, other := range KnownStacks[:i] {
			if sameStack(s.JA4, other.JA4) {
				t.Errorf("%s and %s match the same hellos", other.Name, s.Name)
			}
		}
	}
	for _, tt := range []struct{ ja4, want string }{
		{"t13d2613h2_2802a3db6c62_845d286b0d67", "Safari/URLSession"},
		{"t13d2614h2_2802a3db6c62_0e42e90cf648", "Safari/URLSession"}, // with an empty session_ticket (iphone.pcap frame 72)
		{"t13i2613h1_2802a3db6c62_845d286b0d67", "Safari/URLSession"}, // an IP literal, http/1.1 only
		{"t13d3113h2_e8f1e7e78f70_ac6b91b2c826", "curl/OpenSSL 3.0"},  // a resuming hello
		{"t12d3112h2_e8f1e7e78f70_b26ce05bbdd6", ""},                  // another version
		{"q13d2613h3_2802a3db6c62_845d286b0d67", ""},                  // another transport
		{"t13d2513h2_2802a3db6c62_845d286b0d67", ""},                  // another cipher count
		{"t13d2613h2_2802a3db6c63_845d286b0d67", ""},                  // another cipher list
		{"t13d26··h2_2802a3db6c62", ""},                               // a JA4Program, not a JA4
		{"", ""},
	} {
		s, _ := LikelyStack(tt.ja4)
		if s.Name != tt.want {
			t.Errorf("LikelyStack(%q) = %q, want %q", tt.ja4, s.Name, tt.want)
		}
	}
	if got := LikelyProgram("t13d2613h2_2802a3db6c62_845d286b0d67"); got != "likely Safari/URLSession (JA4 table)" {
		t.Errorf("LikelyProgram = %q", got)
	}
	if !AppleStack("t12d200800_2a284e3b0c56_6e2cce1a33e5") || AppleStack("t13d1517h2_8daaf6152771_cb7bf5808d99") {
		t.Error("AppleStack: Safari's TLS 1.2 session-ID hello is Apple's, Chromium's is not")
	}
}

// TestKnownStacksCorpus: the entries taken from the JA4 corpus are in it
// where their source says, every Apple hello of nDPI's captures is taken
// for Apple's stack, and no other hello of FoxIO's captures is.
func TestKnownStacksCorpus(t *testing.T) {
	dir := corpusDir(t)
	foxio := loadTruth(t, filepath.Join(dir, "ground_truth.jsonl"))
	apple := loadTruth(t, filepath.Join(dir, "apple", "ground_truth_apple.jsonl"))
	at := func(rows []truth, capture string, frame int) string {
		for _, r := range rows {
			if r.Capture == capture && r.Frame == frame {
				return r.JA4
			}
		}
		t.Fatalf("%s frame %d is not in the corpus", capture, frame)
		return ""
	}
	for _, tt := range []struct {
		rows           []truth
		capture        string
		frame          int
		want           string
		exact          bool // the entry's JA4 is this hello's, whole
		inSourceAsText string
	}{
		{apple, "apple/captures/iphone.pcap", 68, "Safari/URLSession", true, "iphone.pcap"},
		{foxio, "captures/macos_tcp_flags.pcap", 4, "Safari/URLSession", true, "macos_tcp_flags.pcap frame 4"},
		{apple, "apple/captures/443-safari.pcap", 4, "Safari, TLS 1.2 era", true, "443-safari.pcap frame 4"},
		{foxio, "captures/browsers-x509.pcapng", 4, "Chromium", false, "browsers-x509.pcapng frame 4"},
		{foxio, "captures/chrome-cloudflare-quic-with-secrets.pcapng", 47, "Chromium, HTTP/3", true, "frame 47"},
		{foxio, "captures/tls12.pcap", 1, "Firefox", true, "tls12.pcap frame 1"},
	} {
		ja4 := at(tt.rows, tt.capture, tt.frame)
		s, _ := LikelyStack(ja4)
		if s.Name != tt.want || (tt.exact && s.JA4 != ja4) || !strings.Contains(s.Source, tt.inSourceAsText) {
			t.Errorf("%s frame %d (%s): entry %+v, want %q citing %q", tt.capture, tt.frame, ja4, s, tt.want, tt.inSourceAsText)
		}
	}
	for _, r := range apple {
		if !AppleStack(r.JA4) {
			t.Errorf("%s frame %d (%s, an Apple client): not taken for Apple's stack", r.Capture, r.Frame, r.JA4)
		}
	}
	for _, r := range foxio {
		if AppleStack(r.JA4) && r.Capture != "captures/macos_tcp_flags.pcap" {
			t.Errorf("%s frame %d (%s): taken for Apple's stack", r.Capture, r.Frame, r.JA4)
		}
	}
}
