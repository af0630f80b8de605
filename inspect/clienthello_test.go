package inspect

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const grease = 0x0a0a

// Shapes of hellos from real clients, rebuilt byte by byte.
var (
	// OpenSSL 3 resuming over TLS 1.3: a TLS 1.2 session_ticket carrying
	// the ticket too, and one PSK identity (seed 000's OpenSSL client).
	opensslResume = testHello{
		sessionID: make([]byte, 32),
		ciphers:   []uint16{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030},
		extensions: []testExt{
			extSNI("example.com"), extU16List16(ExtSupportedGroups, 0x1d, 0x17),
			extBytes(ExtSessionTicket, 176), extEmpty(ExtEncryptThenMAC), extEmpty(ExtExtendedMasterSecret),
			extU16List16(ExtSignatureAlgorithms, 0x0403, 0x0804),
			extU16List8(ExtSupportedVersions, VersionTLS13, VersionTLS12),
			extModes(1), extKeyShare(0x1d), extPSK(12345, 192),
		},
	}
	// URLSession (seed 000): no session_ticket, no PSK, a random 32-byte
	// session ID, TLS 1.3 offered.
	urlSession = testHello{
		sessionID: make([]byte, 32),
		ciphers:   []uint16{0x1301, 0x1302, 0x1303, 0xc02c},
		extensions: []testExt{
			extSNI("echo.websocket.events"), extEmpty(ExtExtendedMasterSecret), {ExtRenegotiationInfo, []byte{0}},
			extU16List16(ExtSupportedGroups, 0x1d, 0x17), {ExtECPointFormats, []byte{1, 0}},
			extALPN("http/1.1"), {ExtStatusRequest, []byte{1, 0, 0, 0, 0}},
			extU16List16(ExtSignatureAlgorithms, 0x0403), extEmpty(ExtSCT), extKeyShare(0x1d), extModes(1),
			extU16List8(ExtSupportedVersions, VersionTLS13, VersionTLS12), {ExtCompressCertificate, []byte{2, 0, 1}},
		},
	}
	// A TLS 1.2-only client (curl with OpenSSL -tls1_2 -no_ticket) resuming by session ID.
	tls12SessionID = testHello{
		sessionID:  []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
		ciphers:    []uint16{0xc02f},
		extensions: []testExt{extSNI("a.test"), extU16List16(ExtSignatureAlgorithms, 0x0401)},
	}
	// gnutls-cli: psk_key_exchange_modes [1, 0], an empty session_ticket.
	gnutls = testHello{
		sessionID: make([]byte, 32),
		ciphers:   []uint16{0x1301},
		extensions: []testExt{
			extSNI("a.test"), extEmpty(ExtSessionTicket), extU16List8(ExtSupportedVersions, VersionTLS13),
			extModes(1, 0), extKeyShare(0x17), extEmpty(ExtEarlyData),
		},
	}
	// Chromium: GREASE in ciphers, extensions (first and last), groups,
	// versions and key shares; ECH outer; ALPN h2.
	chromium = testHello{
		sessionID: make([]byte, 32),
		ciphers:   []uint16{grease, 0x1301, 0x1302, 0x1303, 0xc02b},
		extensions: []testExt{
			extEmpty(grease), extSNI("www.test"), extEmpty(ExtExtendedMasterSecret),
			extU16List16(ExtSupportedGroups, grease, 0x11ec, 0x1d), extALPN("h2", "http/1.1"),
			extU16List16(ExtSignatureAlgorithms, 0x0403, 0x0804), extKeyShare(grease, 0x1d),
			extU16List8(ExtSupportedVersions, grease, VersionTLS13, VersionTLS12), extModes(1),
			{ExtECH, []byte{0, 0, 1, 0, 1, 0x42, 0, 0, 0, 0}}, {grease + 0x1010, []byte{0}},
		},
	}
)

func TestClientHelloFacts(t *testing.T) {
	tests := []struct {
		name    string
		hello   testHello
		attempt Attempt
		check   func(t *testing.T, h *ClientHello, r *ClientHelloRecord)
	}{
		{"openssl resume", opensslResume, AttemptPSK, func(t *testing.T, h *ClientHello, r *ClientHelloRecord) {
			want(t, "session_ticket", r.SessionTicket, SessionTicketFact{Offered: true, Len: 176})
			want(t, "psk identities", r.PreSharedKey.Identities, []PSKIdentity{{Len: 192, ObfuscatedTicketAge: 12345}})
			want(t, "binders", r.PreSharedKey.Binders, 1)
			want(t, "modes", r.PSKKeyExchangeModes, []int{1})
			want(t, "ems", r.ExtendedMasterSecret, true)
			want(t, "etm", h.EncryptThenMAC, true)
		}},
		{"urlsession", urlSession, AttemptNone, func(t *testing.T, h *ClientHello, r *ClientHelloRecord) {
			want(t, "session_ticket", r.SessionTicket, SessionTicketFact{})
			want(t, "psk", r.PreSharedKey.Offered, false)
			want(t, "session_id_len", r.SessionIDLen, 32)
			want(t, "alpn", r.ALPN, []string{"http/1.1"})
			want(t, "status_request", r.StatusRequest, true)
			want(t, "sct", r.SCT, true)
			want(t, "renegotiation_info", r.RenegotiationInfo, true)
			want(t, "compress_certificate", r.CompressCertificate, []int{1})
			want(t, "ec_point_formats", r.ECPointFormats, []int{0})
			want(t, "sni", string(h.ServerName), "echo.websocket.events")
		}},
		{"tls1.2 session id not issued here", tls12SessionID, AttemptNone, func(t *testing.T, h *ClientHello, r *ClientHelloRecord) {
			want(t, "supported_versions", r.SupportedVersions, []int{})
			want(t, "psk modes absent", r.PSKKeyExchangeModes == nil, true)
		}},
		{"gnutls", gnutls, AttemptNone, func(t *testing.T, h *ClientHello, r *ClientHelloRecord) {
			want(t, "modes", r.PSKKeyExchangeModes, []int{1, 0})
			want(t, "session_ticket", r.SessionTicket, SessionTicketFact{Offered: true, Len: 0})
			want(t, "early_data", r.EarlyData, true)
			want(t, "key_share_groups", r.KeyShareGroups, []int{0x17})
		}},
		{"chromium grease and ech", chromium, AttemptNone, func(t *testing.T, h *ClientHello, r *ClientHelloRecord) {
			want(t, "cipher_suites keep grease", r.CipherSuites[0], grease)
			want(t, "extensions keep grease", []int{r.Extensions[0], r.Extensions[len(r.Extensions)-1]}, []int{grease, grease + 0x1010})
			want(t, "grease lists", r.Grease, []string{"cipher_suites", "extensions", "supported_versions", "supported_groups", "key_share_groups"})
			want(t, "ech", r.ECH, true)
			want(t, "ech_type", *r.ECHType, 0)
			want(t, "alpn", r.ALPN, []string{"h2", "http/1.1"})
			if !strings.HasPrefix(r.JA4, "t13d0409h2_") {
				t.Errorf("ja4 = %s, want prefix t13d0409h2_ (GREASE left out of the counts)", r.JA4)
			}
			if strings.Contains(r.JA3, "2570") {
				t.Errorf("ja3 %s keeps a GREASE value", r.JA3)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h ClientHello
			if err := h.Unmarshal(tt.hello.marshal()); err != nil {
				t.Fatal(err)
			}
			r := NewClientHelloRecord(&h, AttemptOf(&h, false), Fingerprint(&h, TransportTCP))
			want(t, "attempt", r.Attempt, tt.attempt)
			tt.check(t, &h, r)
		})
	}
}

// Chromium randomizes its extension order (since Chrome 110): JA3 changes
// between connections, JA4 sorts and does not.
func TestJA4IgnoresExtensionOrder(t *testing.T) {
	a := chromium
	b := chromium
	b.extensions = slices.Clone(chromium.extensions)
	slices.Reverse(b.extensions)
	fa, fb := fingerprintOf(t, a), fingerprintOf(t, b)
	if fa.JA3Hash == fb.JA3Hash {
		t.Errorf("JA3 did not change with the extension order")
	}
	if fa.JA4 != fb.JA4 || fa.JA4R != fb.JA4R {
		t.Errorf("JA4 changed with the extension order: %s vs %s", fa.JA4, fb.JA4)
	}
}

func fingerprintOf(t *testing.T, th testHello) Fingerprints {
	t.Helper()
	var h ClientHello
	if err := h.Unmarshal(th.marshal()); err != nil {
		t.Fatal(err)
	}
	return Fingerprint(&h, TransportTCP)
}

func TestJA4Rules(t *testing.T) {
	tests := []struct {
		name  string
		hello testHello
		want  string // the first ten characters
	}{
		{"no sni is i", testHello{ciphers: []uint16{0x1301}, extensions: []testExt{extALPN("h2")}}, "t12i0101h2"},
		{"no alpn is 00", testHello{ciphers: []uint16{0x1301}, extensions: []testExt{extSNI("x")}}, "t12d010100"},
		{"one-character alpn", testHello{extensions: []testExt{extALPN("a")}}, "t12i0001a0"},
		{"non-ascii alpn", testHello{extensions: []testExt{extALPN("\xba\xad")}}, "t12i000199"},
		{"highest supported version", testHello{extensions: []testExt{extU16List8(ExtSupportedVersions, grease, VersionTLS12, VersionTLS13)}}, "t13i000100"},
		{"ssl3 legacy", testHello{version: VersionSSL30}, "ts3i000000"},
		{"counts cap at 99", testHello{ciphers: make([]uint16, 120)}, "t12i990000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fingerprintOf(t, tt.hello)
			if f.JA4[:10] != tt.want {
				t.Errorf("ja4 = %s, want %s...", f.JA4, tt.want)
			}
		})
	}
	// No extensions and no ciphers hash to twelve zeros (FoxIO hash12).
	if f := fingerprintOf(t, testHello{}); f.JA4 != "t12i000000_000000000000_000000000000" {
		t.Errorf("empty hello ja4 = %s", f.JA4)
	}
}

func TestClientHelloErrors(t *testing.T) {
	good := urlSession.marshal()
	tests := []struct {
		name  string
		msg   []byte
		kind  error
		field string
	}{
		{"empty", nil, ErrTruncated, "handshake header"},
		{"server hello type", append([]byte{2}, good[1:]...), ErrMalformed, "handshake type"},
		{"cut in ciphers", cutBody(good, 4+2+32+1+32+3), ErrTruncated, "cipher_suites"},
		{"session id over 32", withByte(good, 4+2+32, 33), ErrMalformed, "session_id"},
		{"trailing bytes", append(slices.Clone(good), 0), ErrMalformed, "handshake length"},
		{"bad psk modes", testHello{extensions: []testExt{{ExtPSKKeyExchangeModes, []byte{5, 1}}}}.marshal(), ErrMalformed, "extension psk_key_exchange_modes"},
		{"bad pre_shared_key", testHello{extensions: []testExt{{ExtPreSharedKey, []byte{0, 9, 0}}}}.marshal(), ErrMalformed, "extension pre_shared_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h ClientHello
			err := h.Unmarshal(tt.msg)
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, tt.kind) || pe.Field != tt.field {
				t.Fatalf("err = %v, want a %v ParseError in %q", err, tt.kind, tt.field)
			}
			if pe.Offset < 0 || pe.Offset > len(tt.msg) {
				t.Errorf("offset %d outside the message", pe.Offset)
			}
		})
	}
}

// cutBody truncates a handshake message to n bytes but keeps its header
// consistent, so the parse fails inside the body.
func cutBody(msg []byte, n int) []byte {
	m := slices.Clone(msg[:n])
	l := n - 4
	m[1], m[2], m[3] = byte(l>>16), byte(l>>8), byte(l)
	return m
}

func withByte(msg []byte, i int, v byte) []byte {
	m := slices.Clone(msg)
	m[i] = v
	return m
}

func want[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !equalJSONish(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func equalJSONish(a, b any) bool { return reflect.DeepEqual(a, b) }
