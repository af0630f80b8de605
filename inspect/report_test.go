package inspect

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSummarize: proxy records and capture records group by client IP,
// program and host, counting offers, resumptions on both legs and verdicts.
func TestSummarize(t *testing.T) {
	log := `{"client_addr":"192.168.1.31:50001","sni":"api.test","user_agent":"MyApp/1.0 CFNetwork/1494","client_hello":{"attempt":"none","ja4":"t13d"},"client_leg":{"resumed":false,"tickets_sent":1},"upstream_leg":{"resumed":false},"verdict":{"code":"first_contact"}}
{"client_addr":"192.168.1.31:50002","sni":"api.test","user_agent":"MyApp/1.0 CFNetwork/1494","client_hello":{"attempt":"none","ja4":"t13d"},"client_leg":{"resumed":false,"tickets_sent":1},"upstream_leg":{"resumed":true},"verdict":{"code":"client_offered_nothing"}}
{"client_addr":"192.168.1.31:50003","sni":"api.test","user_agent":"MyApp/1.0 CFNetwork/1494","client_hello":{"attempt":"none","ja4":"t13d"},"client_leg":{"resumed":false,"tickets_sent":1},"upstream_leg":{"resumed":true},"verdict":{"code":"client_offered_nothing"}}
{"client_addr":"192.168.1.31:50004","sni":"api.test","user_agent":"curl/7.88.1","client_hello":{"attempt":"psk","ja4":"t13x"},"client_leg":{"resumed":true},"upstream_leg":{"resumed":true},"verdict":{"code":"both_resumed"}}
not json at all
{"client_addr":"10.0.0.2:443","server_addr":"10.0.0.9:443","client_hello":{"attempt":"session_id","ja4":"t12d"},"server_hello":{"complete":true,"resumed":true,"resumed_by":"session_id"}}
`
	entries, bad, first, err := ReadLog(strings.NewReader(log))
	if err != nil || bad != 1 || first != 5 || len(entries) != 5 {
		t.Fatalf("ReadLog: %d entries, %d bad (first %d), %v", len(entries), bad, first, err)
	}
	sums := Summarize(entries)
	if len(sums) != 3 {
		t.Fatalf("%d summaries, want 3 (app, curl, capture)", len(sums))
	}
	app := sums[0]
	if app.Program != "MyApp/1.0 CFNetwork/1494" || app.Conns != 3 || app.Offered["none"] != 3 || app.Resumed != 0 || *app.Upstream != 2 || app.Verdicts["client_offered_nothing"] != 2 {
		t.Errorf("app summary %+v", app)
	}
	if c := sums[2]; c.Host != "10.0.0.9" /* port 443 is left out */ || c.Resumed != 1 || c.Upstream != nil || c.Program != "t12d" /* too short to trim */ {
		t.Errorf("capture summary %+v", c)
	}
	var out bytes.Buffer
	if err := WriteSummaries(&out, sums); err != nil {
		t.Fatal(err)
	}
	if app.WhyNot != "2 of 3 offered nothing although a ticket issued before they started was still unused (client_offered_nothing); 1 had nothing to resume: no ticket had been issued before it started" || sums[1].WhyNot != "resumes" || sums[2].WhyNot != "resumes by session ID" {
		t.Errorf("why not: %q, %q, %q", app.WhyNot, sums[1].WhyNot, sums[2].WhyNot)
	}
	for _, want := range []string{"MyApp/1.0", "none 3", "0/3", "2/3", "WHY NOT", "(client_offered_nothing)", "curl/7.88.1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if runeLen(line) > 120 {
			t.Errorf("line of %d columns: %q", runeLen(line), line)
		}
	}
}

// TestWhyNot: the why-not of a program and host, from proxy verdicts and
// from what capture records show.
func TestWhyNot(t *testing.T) {
	leg := func(sent int, resumed bool) *ClientLeg { return &ClientLeg{TicketsSent: sent, Resumed: resumed} }
	v := func(client, upstream VerdictCode) Verdict {
		code := client
		if client.Family() == "first" || client.Family() == "resumed" {
			code = upstream
		}
		return Verdict{Code: code, Client: client, Upstream: upstream}
	}
	h13 := func(attempt Attempt, modes []int) *ClientHelloRecord {
		return &ClientHelloRecord{SupportedVersions: []int{0x0304, 0x0303}, PSKKeyExchangeModes: modes, Attempt: attempt}
	}
	h12 := func(attempt Attempt, ticketExt bool) *ClientHelloRecord {
		return &ClientHelloRecord{LegacyVersion: 0x0303, Attempt: attempt, SessionTicket: SessionTicketFact{Offered: ticketExt}}
	}
	done := func(resumed bool, by Attempt) *ServerHelloRecord {
		sh := &ServerHelloRecord{Version: 0x0304, Complete: true, Resumed: resumed}
		if resumed {
			sh.ResumedBy = &by
		}
		return sh
	}
	proxy := func(l *ClientLeg, verdict Verdict) *ConnRecord {
		return &ConnRecord{Record: Record{ClientAddr: "10.0.0.1:1", SNI: "a.test", ClientHello: h13(AttemptNone, []int{1})}, ClientLeg: l, Verdict: verdict}
	}
	capture := func(ch *ClientHelloRecord, sh *ServerHelloRecord) *ConnRecord {
		if sh != nil && MaxVersion(ch) < 0x0304 {
			sh.Version, sh.SessionIDLen = 0x0303, 32 // a TLS 1.2 server issues a session ID
		}
		return &ConnRecord{Record: Record{Source: SourcePcap, ClientAddr: "10.0.0.2:1", SNI: "b.test", ClientHello: ch, ServerHello: sh}}
	}
	for _, tt := range []struct {
		name string
		recs []*ConnRecord
		want string
	}{
		{"URLSession pattern", []*ConnRecord{
			proxy(leg(1, false), v(CodeClientFirstContact, CodeUpstreamFirstContact)),
			proxy(leg(1, false), v(CodeClientOfferedNothing, CodeUpstreamResumed)),
		}, "1 of 2 offered nothing although a ticket issued before it started was still unused (client_offered_nothing); 1 had nothing to resume: no ticket had been issued before it started"},
		{"session ID only", []*ConnRecord{
			proxy(leg(0, false), v(CodeClientSessionIDOnly, CodeUpstreamResumed)),
		}, "the one connection could resume only by session ID, which tlsresume does not do (client_session_id_only)"},
		{"client resumes, origin issues no tickets", []*ConnRecord{
			proxy(leg(1, false), v(CodeClientFirstContact, CodeUpstreamFirstContact)),
			proxy(leg(1, true), v(CodeClientResumed, CodeUpstreamNoTicket)),
		}, "resumes (1 of 2; the other had nothing to resume yet); upstream: 1 of 2 met an origin that issues no tickets (upstream_no_ticket)"},
		{"resumes", []*ConnRecord{
			proxy(leg(1, false), v(CodeClientFirstContact, CodeUpstreamFirstContact)),
			proxy(leg(1, true), Verdict{Code: CodeBothResumed, Client: CodeClientResumed, Upstream: CodeUpstreamResumed}),
		}, "resumes (1 of 2; the other had nothing to resume yet)"},
		{"first contact", []*ConnRecord{
			proxy(leg(1, false), v(CodeClientFirstContact, CodeUpstreamFirstContact)),
		}, "first contact only"},
		{"not TLS", []*ConnRecord{
			{Record: Record{ClientAddr: "10.0.0.1:1"}, Target: "a.test:443", Verdict: Verdict{Code: CodeNotTLS}},
		}, "the one connection spoke no TLS (not_tls)"},
		{"capture: session IDs", []*ConnRecord{
			capture(h12(AttemptNone, false), done(false, "")),
			capture(h12(AttemptSessionID, false), done(true, AttemptSessionID)),
		}, "resumes by session ID (1 of 2; the other had nothing to resume yet)"},
		{"capture: PSK resumed", []*ConnRecord{
			capture(h13(AttemptNone, []int{1}), done(false, "")),
			capture(h13(AttemptPSK, []int{1}), done(true, AttemptPSK)),
		}, "resumes by PSK (1 of 2; the other had nothing to resume yet)"},
		{"capture: PSK refused", []*ConnRecord{
			capture(h13(AttemptPSK, []int{1}), done(false, "")),
		}, "the one connection offered a PSK the server did not resume"},
		{"capture: URLSession pattern", []*ConnRecord{
			capture(h13(AttemptNone, []int{1}), done(false, "")),
			capture(h13(AttemptNone, []int{1}), done(false, "")),
		}, "1 of 2 offered nothing (whether the server had sent tickets is not in a capture: TLS 1.3 encrypts them); 1 had nothing to resume: the first connection"},
		{"capture: no psk modes", []*ConnRecord{
			capture(h13(AttemptNone, nil), done(false, "")),
			capture(h13(AttemptNone, nil), done(false, "")),
		}, "1 of 2 sent no psk_key_exchange_modes, so a TLS 1.3 server sends no tickets; 1 had nothing to resume: the first connection"},
		{"capture: TLS 1.2 without tickets", []*ConnRecord{
			capture(h12(AttemptNone, false), done(false, "")),
			capture(h12(AttemptNone, false), done(false, "")),
		}, "1 of 2 offered nothing to a TLS 1.2 server that had issued a session ID or ticket before; 1 had nothing to resume: the first connection"},
		{"capture: one connection", []*ConnRecord{
			capture(h12(AttemptNone, true), done(false, "")),
		}, "first contact only"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sums := Summarize(tt.recs)
			if len(sums) != 1 || sums[0].WhyNot != tt.want {
				t.Errorf("why not %q, want %q", sums[0].WhyNot, tt.want)
			}
		})
	}
}

// TestJA4Program: a first and a resuming hello of one client name one
// program (pre_shared_key changes the extension count and hash only).
func TestJA4Program(t *testing.T) {
	a := JA4Program("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6")
	b := JA4Program("t13d3113h2_e8f1e7e78f70_ac6b91b2c826")
	if a != b || a != "t13d31··h2_e8f1e7e78f70" {
		t.Errorf("%q and %q", a, b)
	}
}

// FuzzReadLog: any input reads, summarizes and prints without panicking,
// and every non-empty line is either an entry or counted as bad.
func FuzzReadLog(f *testing.F) {
	f.Add([]byte(`{"client_addr":"1.2.3.4:5","client_hello":{"attempt":"psk","ja4":"t13d3113h2_e8f1e7e78f70_ac6b91b2c826"},"client_leg":{"resumed":true}}` + "\n"))
	f.Add([]byte("not json\n{}\n{\"client_addr\":\"x\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, bad, _, err := ReadLog(bytes.NewReader(data))
		if err != nil {
			return // a line over 1 MiB
		}
		lines := 0
		for _, l := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(l) != "" {
				lines++
			}
		}
		if len(entries)+bad != lines {
			t.Fatalf("%d entries + %d bad != %d lines", len(entries), bad, lines)
		}
		var out bytes.Buffer
		WriteSummaries(&out, Summarize(entries))
	})
}

// TestProgramName: a User-Agent names its program by the token that
// identifies it, never by the "Mozilla/5.0" every browser starts with.
func TestProgramName(t *testing.T) {
	for _, tt := range []struct{ ua, want string }{
		{"", ""},
		{"curl/8.5.0", "curl/8.5.0"},
		{"MyApp/1.0 CFNetwork/1494 Darwin/23.0", "MyApp/1.0 CFNetwork/1494"},
		{"CFNetwork/1494 Darwin/23.0", "CFNetwork/1494"},
		{"Go-http-client/1.1", "Go-http-client/1.1"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome/131"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.8078.73 Safari/537.36", "HeadlessChrome/156"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox/128"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86", "Edge/131"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari/18.1"},
		{"Mozilla/5.0 (compatible; unknown)", "Mozilla/5.0"},
		{"Wget", "Wget"},
		{"(unbalanced", ""},
	} {
		if got := ProgramName(tt.ua); got != tt.want {
			t.Errorf("ProgramName(%q) = %q, want %q", tt.ua, got, tt.want)
		}
	}
}

// TestQUICBesideTCP: a client's QUIC and TCP connections to one host are
// summarised in adjacent rows with the transport as a column; the table
// marks QUIC hellos' versions with q; transport= selects either.
func TestQUICBesideTCP(t *testing.T) {
	log := `{"client_addr":"10.0.0.5:1","sni":"a.test","client_hello":{"attempt":"none","ja4":"t13d1516h2_8daaf6152771_e5627efa2ab1","supported_versions":[772]},"server_hello":{"complete":true}}
{"client_addr":"10.0.0.5:2","sni":"b.test","transport":"quic","client_hello":{"attempt":"none","ja4":"q13d0310h3_55b375c5d22e_cd85d2d88918","supported_versions":[772]},"server_hello":{"complete":true}}
{"client_addr":"10.0.0.5:3","sni":"a.test","transport":"quic","client_hello":{"attempt":"psk","ja4":"q13d0311h3_55b375c5d22e_cd85d2d88918","supported_versions":[772]},"server_hello":{"complete":true,"resumed":true,"resumed_by":"psk"}}
{"client_addr":"10.0.0.5:4","sni":"b.test","transport":"tcp","client_hello":{"attempt":"none","ja4":"t13d1516h2_8daaf6152771_e5627efa2ab1","supported_versions":[772]},"server_hello":{"complete":true}}
`
	entries, bad, _, err := ReadLog(strings.NewReader(log))
	if err != nil || bad != 0 {
		t.Fatal(bad, err)
	}
	var got []string
	for _, s := range Summarize(entries) {
		got = append(got, s.Host+" "+s.Transport+" "+strconv.Itoa(s.Resumed))
	}
	if want := []string{"a.test tcp 0", "a.test quic 1", "b.test quic 0", "b.test tcp 0"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	var out bytes.Buffer
	WriteSummaries(&out, Summarize(entries))
	if lines := strings.Split(out.String(), "\n"); !strings.Contains(lines[0], " OVER ") || !strings.Contains(out.String(), "a.test                     quic ") {
		t.Errorf("table:\n%s", out.String())
	}
	if cells := rowCells(&entries[2].Record); cells[3] != "q1.3" {
		t.Errorf("version cell of a QUIC hello %q, want q1.3", cells[3])
	}
	sel, err := ParseSelector("transport=quic,host=a")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if sel.Match(e) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("transport=quic,host=a selected %d records, want 1", n)
	}
}
