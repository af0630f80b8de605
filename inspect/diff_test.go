package inspect

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The two clients of the URLSession report (/work/shared/seeds, README's
// opening): hellos built from the extension lists its Wireshark dumps show.

// urlSessionHello: no session_ticket, psk_dhe_ke, never a pre_shared_key;
// GREASE in front and at the end as Apple's stack sends it.
func urlSessionHello() *ClientHelloRecord {
	return &ClientHelloRecord{
		LegacyVersion: 0x0303, SessionIDLen: 32,
		CipherSuites: []int{0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f, 0xc008, 0xc012, 0x000a},
		Extensions:   []int{0x3a3a, 0, 23, 0xff01, 10, 11, 16, 5, 13, 18, 51, 45, 43, 27, 0x4a4a, 21},
		ALPN:         []string{"h2", "http/1.1"}, SupportedVersions: []int{0x5a5a, 0x0304, 0x0303},
		SupportedGroups: []int{0x6a6a, 29, 23, 24, 25}, PSKKeyExchangeModes: []int{1},
		ExtendedMasterSecret: true, Attempt: AttemptNone,
		JA4: "t13d2014h2_a09f3c656075_e42f34c56612", JA3Hash: "773906b0efdefa24a7f2b8eb6985bf37",
	}
}

// openSSLHello: an empty session_ticket (asks), psk_dhe_ke, and with
// resume a pre_shared_key of one identity.
func openSSLHello(resume bool) *ClientHelloRecord {
	h := &ClientHelloRecord{
		LegacyVersion: 0x0303, SessionIDLen: 32,
		CipherSuites: []int{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028, 0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f},
		Extensions:   []int{0xff01, 0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51},
		ALPN:         []string{"h2", "http/1.1"}, SupportedVersions: []int{0x0304, 0x0303},
		SupportedGroups: []int{0x11ec, 29, 23, 30, 24, 25, 256, 257, 258}, PSKKeyExchangeModes: []int{1},
		SessionTicket: SessionTicketFact{Offered: true}, ExtendedMasterSecret: true, EncryptThenMAC: true,
		Attempt: AttemptNone,
		JA4:     "t13d3012h2_1d37bd780c83_882d495ac381", JA3Hash: "e0e2b9c2c4a5e0d1a43e7a7f3a4c7c36",
	}
	if resume {
		h.Extensions = append(h.Extensions, 41)
		h.PreSharedKey = PSKFact{Offered: true, Identities: []PSKIdentity{{Len: 192}}, Binders: 1}
		h.Attempt = AttemptPSK
		h.JA4 = "t13d3013h2_1d37bd780c83_b26ce05bbdd6"
	}
	return h
}

var t0 = time.Date(2025, 8, 20, 10, 0, 0, 0, time.UTC)

// proxyRecord is one connection through the proxy, as its --log holds it.
func proxyRecord(id string, sec int, ua string, ch *ClientHelloRecord, leg ClientLeg, upResumed bool, v Verdict) *ConnRecord {
	return &ConnRecord{
		Record: Record{V: SchemaVersion, Time: t0.Add(time.Duration(sec) * time.Second), Source: SourceConnect,
			ClientAddr: "192.168.1.31:5" + id[1:] + "000", SNI: "echo.websocket.events", ClientHello: ch},
		ID: id, Target: "echo.websocket.events:443", UserAgent: ua, ClientLeg: &leg,
		UpstreamLeg: &UpstreamLeg{Resumed: upResumed},
		Mirrored:    &Mirrored{Tickets: true}, Verdict: v,
	}
}

// urlSessionVsOpenSSL: three URLSession connections, each sent a ticket
// and none bringing one back; two OpenSSL connections, the second resuming
// with the ticket the first got.
func urlSessionVsOpenSSL() (app, ossl []*ConnRecord) {
	const ua = "MyApp/1.0 CFNetwork/1494 Darwin/23.0"
	first := Verdict{Code: CodeFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamFirstContact}
	nothing := Verdict{Code: CodeClientOfferedNothing, Client: CodeClientOfferedNothing, Upstream: CodeUpstreamResumed}
	leg := ClientLeg{Version: "1.3", TicketsSent: 1, Ticket: TicketNone}
	app = []*ConnRecord{
		proxyRecord("c1", 0, ua, urlSessionHello(), leg, false, first),
		proxyRecord("c2", 5, ua, urlSessionHello(), leg, true, nothing),
		proxyRecord("c4", 9, ua, urlSessionHello(), leg, true, nothing),
	}
	resumed := leg
	resumed.Resumed, resumed.Ticket, resumed.TicketFrom, resumed.TicketAgeMS = true, TicketOurs, "c3", 1200
	ossl = []*ConnRecord{
		proxyRecord("c3", 7, "", openSSLHello(false), leg, true, Verdict{Code: CodeClientFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamResumed}),
		proxyRecord("c5", 8, "", openSSLHello(true), resumed, true, Verdict{Code: CodeBothResumed, Client: CodeClientResumed, Upstream: CodeUpstreamResumed}),
	}
	return app, ossl
}

func rowOf(t *testing.T, d *Diff, field string) DiffRow {
	t.Helper()
	for _, r := range d.Rows {
		if r.Field == field {
			return r
		}
	}
	t.Fatalf("no row %q", field)
	return DiffRow{}
}

// TestCompareURLSession: the story of the URLSession report, row by row.
func TestCompareURLSession(t *testing.T) {
	app, ossl := urlSessionVsOpenSSL()
	d := Compare(app, ossl, "A", "B")
	if d.A.Conns != 3 || d.A.Programs[0] != "MyApp/1.0 CFNetwork/1494" || d.B.Hosts[0] != "echo.websocket.events" {
		t.Errorf("sides %+v, %+v", d.A, d.B)
	}
	for _, tt := range []struct {
		field, a, b string
		differs     bool
		meaning     string // substring; "" when the row must have none
	}{
		{"transport", "tcp", "tcp", false, ""},
		{"versions", "1.3, 1.2", "1.3, 1.2", false, ""},
		{"session_ticket", "absent in 3 of 3 hellos", "asks in 2 of 2 hellos", true,
			"A sends no session_ticket extension: over TLS 1.3 that costs nothing, as tickets come in NewSessionTicket messages (RFC 8446, Section 4.6.1), but a TLS 1.2 server gives it no ticket (RFC 5077, Section 3.2); B sends one"},
		{"pre_shared_key", "in none of 3 hellos", "in 1 of 2 hellos (1 identity)", true,
			"A never offers a pre_shared_key, so it never tries TLS 1.3 resumption; B offers one in 1 of 2 hellos"},
		{"psk_key_exchange_modes", "psk_dhe_ke", "psk_dhe_ke", false, ""},
		{"early_data", "in none of 3 hellos", "in none of 2 hellos", false, ""},
		{"session_id_len", "32 bytes", "32 bytes", false, ""},
		{"alpn", "h2, http/1.1", "h2, http/1.1", false, ""},
		{"supported_groups", "GREASE, x25519, secp256r1, secp384r1, secp521r1", "X25519MLKEM768, x25519, secp256r1, x448, secp384r1, secp521r1, ffdhe2048, ffdhe3072, ffdhe4096", true, "different key exchange groups"},
		{"extensions", "GREASE, server_name, extended_master_secret, renegotiation_info, supported_groups, ec_point_formats, application_layer_protocol_negotiation, status_request, signature_algorithms, signed_certificate_timestamp, key_share, psk_key_exchange_modes, supported_versions, compress_certificate, GREASE, padding", "", true,
			"only A sends status_request, signed_certificate_timestamp, compress_certificate, padding; only B sends session_ticket, encrypt_then_mac, pre_shared_key (session_ticket, pre_shared_key: see their rows)"},
		{"cipher_suites", "20", "30", true, "A and B offer different cipher suites (20 and 30)"},
		{"extended_master_secret", "in 3 of 3 hellos", "in 2 of 2 hellos", false, ""},
		{"ja4", "t13d2014h2_a09f3c656075_e42f34c56612", "t13d3012h2_1d37bd780c83_882d495ac381 (1 of 2); t13d3013h2_1d37bd780c83_b26ce05bbdd6 (1 of 2)", true, "different ClientHellos"},
		{"connections", "3", "2", false, ""},
		{"attempts", "none in 3 of 3 connections", "psk in 1, none in 1 of 2 connections", true,
			"A never tried to resume, with no PSK, ticket or issued session ID in any of its 3 hellos; B tried in 1 of 2 connections"},
		{"client_resumed", "0 of 3", "1 of 2", true, "A resumed none of its 3 handshakes and B 1 of its 2 handshakes"},
		{"tickets_sent", "3 by tlsresume", "2 by tlsresume", false, ""},
		{"tickets_brought_back", "0 of 3", "1 of 2: c3 → c5", true,
			"B brought back the ticket c3 issued; A offered no PSK although tlsresume sent it 3 tickets"},
		{"ticket_age", "-", "median 1.2 s", true, "only B brought back a ticket tlsresume issued, a median 1.2 s after it was issued"},
		{"upstream_resumed", "2 of 3", "2 of 2", false, ""}, // A's first was a first contact
		{"verdict", "client_offered_nothing (2 of 3)", "both_resumed (1 of 2)", true, // first contacts aside
			"A's commonest verdict is client_offered_nothing: the client offered no ticket or PSK although tlsresume had issued this client (the same IP, program and TLS stack) a ticket before this connection started; B's commonest verdict is both_resumed"},
	} {
		t.Run(tt.field, func(t *testing.T) {
			r := rowOf(t, d, tt.field)
			if r.A != tt.a || (tt.b != "" && r.B != tt.b) || r.Differs != tt.differs {
				t.Errorf("a %q, b %q, differs %v; want %q, %q, %v", r.A, r.B, r.Differs, tt.a, tt.b, tt.differs)
			}
			if (tt.meaning == "") != (r.Meaning == "") || !strings.Contains(r.Meaning, tt.meaning) {
				t.Errorf("meaning %q, want %q", r.Meaning, tt.meaning)
			}
		})
	}
}

// TestCompareSentences: one case per rule that shapes a sentence, on pairs
// of hand-built hellos.
func TestCompareSentences(t *testing.T) {
	hello := func(f func(h *ClientHelloRecord)) []*ConnRecord {
		var recs []*ConnRecord
		for i := range 2 {
			h := openSSLHello(false)
			f(h)
			recs = append(recs, &ConnRecord{Record: Record{Source: SourcePcap, ClientAddr: "10.0.0.1:4000", SNI: "s.test",
				ClientHello: h, ServerHello: &ServerHelloRecord{Version: 0x0304, Complete: true}}, ID: "p" + string(rune('1'+i))})
		}
		return recs
	}
	same := func(*ClientHelloRecord) {}
	for _, tt := range []struct {
		name, field string
		a           func(*ClientHelloRecord)
		want        string
	}{
		{"only TLS 1.2", "versions", func(h *ClientHelloRecord) { h.SupportedVersions = nil },
			"A offers no TLS 1.3: it can resume only by a TLS 1.2 ticket (RFC 5077) or a session ID, never by a PSK, while B offers TLS 1.3"},
		{"no ticket extension over TLS 1.2", "session_ticket", func(h *ClientHelloRecord) { h.SupportedVersions, h.SessionTicket = nil, SessionTicketFact{} },
			"A sends no session_ticket extension: over TLS 1.2 no server gives it a ticket (RFC 5077, Section 3.2), so it can resume only by session ID; B sends one"},
		{"no psk modes", "psk_key_exchange_modes", func(h *ClientHelloRecord) { h.PSKKeyExchangeModes = nil },
			"A sends no psk_key_exchange_modes: a TLS 1.3 server sends it no tickets (RFC 8446, Section 4.2.9), so it cannot resume over TLS 1.3; B sends them"},
		{"psk_ke only", "psk_key_exchange_modes", func(h *ClientHelloRecord) { h.PSKKeyExchangeModes = []int{0} },
			"A allows only psk_ke: servers that resume only with (EC)DHE, as crypto/tls does, send it no tickets (RFC 8446, Section 4.2.9)"},
		{"early data", "early_data", func(h *ClientHelloRecord) { h.EarlyData = true },
			"A offers early_data (0-RTT) in 2 of 2 hellos, sending application data with a resumed PSK before the handshake completes (RFC 8446, Section 4.2.10); B never does"},
		{"no EMS", "extended_master_secret", func(h *ClientHelloRecord) { h.ExtendedMasterSecret = false },
			"A sends extended_master_secret in none of 2 hellos and B in 2 of 2 hellos: over TLS 1.2 a session resumes only when both handshakes agree on it (RFC 7627, Section 5.3)"},
		{"extension order", "extensions", func(h *ClientHelloRecord) { h.Extensions[0], h.Extensions[1] = h.Extensions[1], h.Extensions[0] },
			"A and B send the same extensions in another order: JA3 changes, JA4 (which sorts them) does not, and resumption does not care"},
		{"session ID", "session_id_len", func(h *ClientHelloRecord) { h.SessionIDLen = 0 },
			"A and B send legacy session IDs of different lengths: a 32-byte one is TLS 1.3 middlebox compatibility (RFC 8446, Appendix D.4)"},
		{"alpn", "alpn", func(h *ClientHelloRecord) { h.ALPN = nil },
			"A and B offer different ALPN protocols: that does not decide resumption, though 0-RTT needs the same protocol again (RFC 8446, Section 4.2.10)"},
		{"ticket carried", "session_ticket", func(h *ClientHelloRecord) { h.SessionTicket.Len = 160 },
			"A carries a TLS 1.2 ticket in 2 of 2 hellos, an attempt to resume (RFC 5077, Section 3.2); B never does"},
		{"capture: tickets unseen", "tickets_brought_back", func(h *ClientHelloRecord) { h.Attempt = AttemptPSK },
			"A offered a ticket or PSK in 2 of 2 connections; B offered no ticket or PSK in any of its 2 hellos"},
		{"identical", "versions", same, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Compare(hello(tt.a), hello(same), "A", "B")
			r := rowOf(t, d, tt.field)
			if r.Meaning != tt.want && !(tt.want != "" && strings.HasPrefix(r.Meaning, tt.want)) {
				t.Errorf("meaning %q\nwant %q", r.Meaning, tt.want)
			}
			if r.Differs != (tt.want != "") {
				t.Errorf("differs %v", r.Differs)
			}
			if rowOf(t, d, "tickets_sent").A != "TLS 1.3 ones are encrypted, not seen" {
				t.Errorf("tickets_sent %q", rowOf(t, d, "tickets_sent").A)
			}
		})
	}
}

// TestCompareSelected: empty selections are errors naming the selector;
// the sides carry their selectors.
func TestCompareSelected(t *testing.T) {
	app, ossl := urlSessionVsOpenSSL()
	recs := append(app, ossl...)
	a, _ := ParseSelector("program=myapp")
	b, _ := ParseSelector("program=t13d30")
	d, err := CompareSelected(recs, a, b)
	if err != nil || d.A.Conns != 3 || d.B.Conns != 2 || d.A.Selector != "program=myapp" || d.A.Name != "A" {
		t.Fatalf("%+v, %v", d, err)
	}
	none, _ := ParseSelector("program=foo")
	_, err = CompareSelected(recs, a, none)
	if err == nil || err.Error() != `inspect: no record matches b's selector "program=foo"` {
		t.Errorf("error %v", err)
	}
	if d := Compare(nil, nil, "A", "B"); len(d.Rows) != len(diffFields) {
		t.Errorf("empty sets: %d rows", len(d.Rows))
	}
}

// TestWriteDiff: the text of the URLSession story, against a golden file
// (go test ./inspect -run TestWriteDiff -update rewrites it), no line over
// 120 columns; and the JSON shape.
func TestWriteDiff(t *testing.T) {
	app, ossl := urlSessionVsOpenSSL()
	recs := append(app, ossl...)
	a, _ := ParseSelector("program=myapp")
	b, _ := ParseSelector("program=t13d30")
	d, err := CompareSelected(recs, a, b)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := WriteDiff(&out, d); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if runeLen(line) > 120 {
			t.Errorf("line of %d columns: %q", runeLen(line), line)
		}
	}
	golden := filepath.Join("testdata", "diff_urlsession.txt")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if out.String() != string(want) {
		t.Errorf("WriteDiff:\n%s\nwant (%s):\n%s", out.String(), golden, want)
	}

	js, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var shape struct {
		A struct {
			Name, Selector string
			Conns, Hellos  int
			Programs       []string
			Hosts          []string
		}
		Rows []map[string]any
	}
	if err := json.Unmarshal(js, &shape); err != nil || shape.A.Selector != "program=myapp" || len(shape.Rows) != len(diffFields) {
		t.Fatalf("%s: %v", js, err)
	}
	for _, r := range shape.Rows {
		_, hasMeaning := r["meaning"]
		if r["section"] == nil || r["field"] == nil || r["a"] == nil || r["b"] == nil || hasMeaning != r["differs"].(bool) {
			t.Errorf("row %v", r)
		}
	}
}

// TestCompareWithoutHellos: records whose hello was unreadable compare
// without panicking and say so.
func TestCompareWithoutHellos(t *testing.T) {
	broken := []*ConnRecord{{Record: Record{ClientAddr: "10.0.0.1:1", Error: "truncated"}, ID: "c1", ClientLeg: &ClientLeg{}}}
	app, _ := urlSessionVsOpenSSL()
	d := Compare(broken, app, "A", "B")
	if r := rowOf(t, d, "versions"); r.A != "no hellos" {
		t.Errorf("versions %+v", r)
	}
	if r := rowOf(t, d, "attempts"); r.A != "unreadable in 1 of 1 connections" {
		t.Errorf("attempts %+v", r)
	}
	var out bytes.Buffer
	WriteDiff(&out, d)
}

// TestCompareNoTickets: a client that sends no psk_key_exchange_modes is
// sent no tickets, and the rows say why; tlsresume's upstream leg is
// compared on the connections that had something to resume.
func TestCompareNoTickets(t *testing.T) {
	_, ossl := urlSessionVsOpenSSL()
	noModes := func() *ClientHelloRecord {
		h := urlSessionHello()
		h.PSKKeyExchangeModes = nil
		h.Extensions = []int{0, 23, 0xff01, 10, 11, 16, 5, 13, 18, 51, 43}
		return h
	}
	leg := ClientLeg{Version: "1.3", Ticket: TicketNone}
	noTicket := Verdict{Code: CodeClientFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamNoTicket}
	goClient := []*ConnRecord{
		proxyRecord("c6", 20, "Go-http-client/1.1", noModes(), leg, false, noTicket),
		proxyRecord("c7", 21, "Go-http-client/1.1", noModes(), leg, false, noTicket),
	}
	d := Compare(goClient, ossl, "Go", "OpenSSL")
	for _, tt := range []struct{ field, want string }{
		{"psk_key_exchange_modes", "Go sends no psk_key_exchange_modes: a TLS 1.3 server sends it no tickets (RFC 8446, Section 4.2.9), so it cannot resume over TLS 1.3; OpenSSL sends them"},
		{"tickets_sent", "tlsresume sent OpenSSL 2 tickets and Go none (Go sends no psk_key_exchange_modes, RFC 8446, Section 4.2.9)"},
		{"tickets_brought_back", "OpenSSL brought back the ticket c3 issued; Go brought none back and was sent none"},
		{"upstream_resumed", "tlsresume's own handshakes with the origin resumed 0 of 2 for Go and 2 of 2 for OpenSSL: that leg depends on the origin and tlsresume's session cache, not on the client"},
		{"verdict", "Go's commonest verdict is client_first_contact: the client offered nothing and has had no ticket from tlsresume yet; OpenSSL's commonest verdict is both_resumed"},
	} {
		if r := rowOf(t, d, tt.field); !r.Differs || r.Meaning != tt.want {
			t.Errorf("%s: differs %v, meaning %q\nwant %q", tt.field, r.Differs, r.Meaning, tt.want)
		}
	}
}
