package inspect

// KnownStack is a TLS stack recognised by the JA4 of its ClientHellos, for
// naming a program that sent no User-Agent (a capture, a passed-through
// connection) and for deciding whether a hello is Apple's stack, whose
// URLSession keeps no session across sessions (the URLSession pattern).
//
// A hello matches an entry when its JA4 has the entry's transport, highest
// version, cipher count and cipher hash (JA4's "t13", the "26" of "d26",
// and the "2802a3db6c62" after the first "_"): that is the stack's cipher
// list, which an app does not choose. The SNI kind (d or i), the ALPN and
// the extension count and hash are left out: they change with the app's
// settings, with the host, and with a resuming hello's pre_shared_key.
//
// A match is a likely program, never a fact: another program can send the
// same cipher list (every program linked to one OpenSSL does), and a stack
// changes its list between releases.
type KnownStack struct {
	// JA4 is one JA4 seen from the stack, whole, as its source shows it.
	JA4 string
	// Name names the stack as reports show it: "Safari/URLSession".
	Name string
	// Apple: Apple's stack (Safari, CFNetwork/URLSession,
	// Network.framework), the one the URLSession pattern is named after.
	Apple bool
	// Source says where JA4 was seen: a capture of a public corpus with
	// its frame, or a client run on a test machine with its version.
	Source string
}

// KnownStacks is the table LikelyStack reads. Corpus paths are those of
// ../shared/corpora/ja4corpus (see its README: FoxIO-LLC/ja4 pcap/ at
// 0e54bc8371de34df94a35f2442c05bda2e8b2034; ntop/nDPI
// tests/cfgs/default/pcap/ at 3b1286ab03b0c9223ac208a01868d8c1f6c0ae00).
// TestKnownStacksCorpus checks the corpus entries against those files, and
// TestKnownStacksRealClients the machine's clients against theirs.
var KnownStacks = []KnownStack{
	{JA4: "t13d2613h2_2802a3db6c62_845d286b0d67", Name: "Safari/URLSession", Apple: true,
		Source: "nDPI iphone.pcap (an iPhone's own traffic, iOS 13 era), 13 of its 14 hellos, e.g. frame 68 to p26-fmfmobile.icloud.com (nDPI's JA4 agrees); FoxIO macos_tcp_flags.pcap frame 4 (macOS)"},
	{JA4: "t12d2010h2_2a284e3b0c56_f05fdf8c38a9", Name: "Safari, TLS 1.2 era", Apple: true,
		Source: "nDPI 443-safari.pcap frame 4 and safari.pcap (Safari on macOS, TLS 1.2 only; its session-ID resumptions send t12d200800_2a284e3b0c56_…)"},
	{JA4: "t13d1517h2_8daaf6152771_cb7bf5808d99", Name: "Chromium",
		Source: "Chromium 156.0.8078 (headless) on Debian 12; FoxIO browsers-x509.pcapng frame 4 has the same cipher part (t13d1516h2_8daaf6152771_e5627efa2ab1)"},
	{JA4: "q13d0310h3_55b375c5d22e_cd85d2d88918", Name: "Chromium, HTTP/3",
		Source: "FoxIO chrome-cloudflare-quic-with-secrets.pcapng frame 47 (Chrome to cloudflare-quic.com over QUIC)"},
	{JA4: "t13d1715h2_5b57614c22b0_3d5424432f57", Name: "Firefox",
		Source: "FoxIO tls12.pcap frame 1, to contile.services.mozilla.com (a service only Firefox calls)"},
	{JA4: "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", Name: "curl/OpenSSL 3.0",
		Source: "curl 7.88.1 and openssl s_client, both OpenSSL 3.0, on Debian 12 (s_client sends no ALPN: t13d311000_…)"},
	{JA4: "t13d181100_85036bcba153_d41ae481755e", Name: "Python ssl/OpenSSL",
		Source: "Python 3.11.7 urllib (ssl.create_default_context, OpenSSL 3.0) on Debian 12"},
	{JA4: "t13d131300_f57a46bbacb6_fb48f8b98a29", Name: "Go crypto/tls",
		Source: "Go 1.26 crypto/tls and net/http (default cipher suites) on Debian 12"},
	{JA4: "t13d291300_723694b0fccc_2cc26d266019", Name: "gnutls-cli/GnuTLS",
		Source: "gnutls-cli 3.7.9 (default priority) on Debian 12"},
}

// isJA4 reports whether s has JA4's shape: a 10-character first part,
// then "_" and a 12-character cipher hash, then "_" or nothing.
func isJA4(s string) bool {
	return len(s) >= 23 && s[10] == '_' && (len(s) == 23 || s[23] == '_')
}

// sameStack reports whether two JA4s have the same transport, version,
// cipher count and cipher hash ("t13", "26" and "2802a3db6c62" of
// t13d2613h2_2802a3db6c62_845d286b0d67).
func sameStack(a, b string) bool {
	return isJA4(a) && isJA4(b) && a[0:3] == b[0:3] && a[4:6] == b[4:6] && a[10:23] == b[10:23]
}

// LikelyStack returns the entry of KnownStacks whose JA4 matches ja4 (see
// KnownStack), and false when none does.
func LikelyStack(ja4 string) (KnownStack, bool) {
	for _, s := range KnownStacks {
		if sameStack(s.JA4, ja4) {
			return s, true
		}
	}
	return KnownStack{}, false
}

// LikelyProgram says which program a JA4 likely comes from, as reports
// show it: "likely Safari/URLSession (JA4 table)"; "" when KnownStacks has
// no match.
func LikelyProgram(ja4 string) string {
	if s, ok := LikelyStack(ja4); ok {
		return "likely " + s.Name + " (JA4 table)"
	}
	return ""
}

// AppleStack reports whether ja4 likely comes from Apple's TLS stack, by
// KnownStacks (never by a User-Agent, which any program can send).
func AppleStack(ja4 string) bool {
	s, ok := LikelyStack(ja4)
	return ok && s.Apple
}

// OfferedNothingCause says what a client that offered nothing to resume,
// although it had been given a ticket, likely is, by its JA4: the
// URLSession pattern only when KnownStacks says Apple's stack; else what
// any client can be.
func OfferedNothingCause(ja4 string) string {
	if AppleStack(ja4) {
		return "likely Apple's stack (JA4 table): the URLSession pattern"
	}
	return "a new process, a client that keeps no sessions, or one that had not yet read the ticket"
}
