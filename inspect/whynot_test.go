package inspect

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The JA4s of the machine's curl (OpenSSL 3.0) and of Apple's stack
// (KnownStacks), for records shaped like the proxy's.
const (
	curlJA4  = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"
	appleJA4 = "t13d2613h2_2802a3db6c62_845d286b0d67"
)

// whyRecord is a connection through the proxy as its --log has it: started
// at ms milliseconds, its handshake with tlsresume taking hs ms and ending
// with one ticket sent; from names the connection whose ticket it brought
// back ("" for none). The verdict is the one the proxy wrote before it
// dated tickets by their issue time: any earlier ticket made "offered
// nothing".
func whyRecord(id string, ms, hs float64, ja4, ua, from string) *ConnRecord {
	t := t0.Add(time.Duration(ms * float64(time.Millisecond)))
	ch := &ClientHelloRecord{SupportedVersions: []int{0x0304, 0x0303}, PSKKeyExchangeModes: []int{1}, Attempt: AttemptNone, JA4: ja4}
	leg := &ClientLeg{Version: "1.3", TicketsSent: 1, HandshakeMS: hs, Ticket: TicketNone}
	v := Verdict{Code: CodeClientOfferedNothing, Client: CodeClientOfferedNothing, Upstream: CodeUpstreamResumed}
	switch {
	case from != "":
		ch.Attempt, ch.PreSharedKey = AttemptPSK, PSKFact{Offered: true, Identities: []PSKIdentity{{Len: 192}}, Binders: 1}
		leg.Resumed, leg.Ticket, leg.TicketFrom = true, TicketOurs, from
		v = Verdict{Code: CodeBothResumed, Client: CodeClientResumed, Upstream: CodeUpstreamResumed}
	case id == "c1":
		v = Verdict{Code: CodeFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamFirstContact}
	}
	return &ConnRecord{Record: Record{V: SchemaVersion, Time: t, Source: SourceConnect, ClientAddr: "127.0.0.1:4" + id[1:],
		ServerAddr: "localhost:9444", SNI: "localhost", ClientHello: ch}, ID: id, Target: "localhost:9444", UserAgent: ua,
		ClientLeg: leg, UpstreamLeg: &UpstreamLeg{Resumed: true}, Mirrored: &Mirrored{Tickets: true}, Verdict: v}
}

// captureRecord is a hello read from a capture: a TLS 1.3-capable client,
// and the server's answer at version (0 for none seen).
func captureRecord(ms int, attempt Attempt, version int, resumed bool) *ConnRecord {
	ch := &ClientHelloRecord{SupportedVersions: []int{0x0304, 0x0303}, PSKKeyExchangeModes: []int{1}, SessionIDLen: 32, Attempt: attempt, JA4: curlJA4}
	r := &ConnRecord{Record: Record{V: SchemaVersion, Time: t0.Add(time.Duration(ms) * time.Millisecond), Source: SourcePcap,
		ClientAddr: "127.0.0.1:5" + string(rune('0'+ms%10)), ServerAddr: "127.0.0.1:9445", SNI: "localhost", ClientHello: ch}}
	if version != 0 {
		r.ServerHello = &ServerHelloRecord{Version: version, SessionIDLen: 32, Certificate: !resumed, Complete: true, Resumed: resumed}
		if resumed {
			by := attempt
			r.ServerHello.ResumedBy = &by
		}
	}
	return r
}

// TestWhyNotCounts: a row's why-not counts its connections per reason, and
// counts a ticket only if it was issued before the connection started and
// not yet brought back; a capture's says what a capture shows, and never
// speaks of PSKs to a TLS 1.2 server.
func TestWhyNotCounts(t *testing.T) {
	for _, tt := range []struct {
		name string
		recs []*ConnRecord
		want string
	}{
		{"parallel first connections", []*ConnRecord{
			whyRecord("c1", 0, 10, curlJA4, "curl/7.88.1", ""),
			whyRecord("c2", 2, 10, curlJA4, "curl/7.88.1", ""), // before c1's ticket went out, at 10 ms
			whyRecord("c3", 30, 5, curlJA4, "curl/7.88.1", ""),
			whyRecord("c4", 40, 5, curlJA4, "curl/7.88.1", "c1"),
		}, "2 of 4 had nothing to resume: no ticket had been issued before they started; " +
			"1 offered nothing although a ticket issued before it started was still unused (client_offered_nothing); 1 resumed"},
		{"tickets brought back already", []*ConnRecord{
			whyRecord("c1", 0, 5, curlJA4, "curl/7.88.1", ""),
			whyRecord("c2", 10, 5, curlJA4, "curl/7.88.1", "c1"),
			whyRecord("c3", 12, 5, curlJA4, "curl/7.88.1", ""), // c1's ticket went to c2; c2's goes out at 15 ms
		}, "1 of 3 offered nothing: every ticket issued before it started had been brought back by another connection; " +
			"1 resumed; 1 had nothing to resume: no ticket had been issued before it started"},
		{"Apple's stack: the URLSession pattern", []*ConnRecord{
			whyRecord("c1", 0, 10, appleJA4, "MyApp/1.0 CFNetwork/1494 Darwin/23.0", ""),
			whyRecord("c2", 500, 10, appleJA4, "MyApp/1.0 CFNetwork/1494 Darwin/23.0", ""),
			whyRecord("c3", 900, 10, appleJA4, "MyApp/1.0 CFNetwork/1494 Darwin/23.0", ""),
		}, "2 of 3 offered nothing although a ticket issued before they started was still unused, likely Apple's stack (JA4 table): " +
			"the URLSession pattern (client_offered_nothing); 1 had nothing to resume: no ticket had been issued before it started"},
		{"a User-Agent alone does not make Apple's stack", []*ConnRecord{
			whyRecord("c1", 0, 10, curlJA4, "MyApp/1.0 CFNetwork/1494 Darwin/23.0", ""),
			whyRecord("c2", 500, 10, curlJA4, "MyApp/1.0 CFNetwork/1494 Darwin/23.0", ""),
		}, "1 of 2 offered nothing although a ticket issued before it started was still unused (client_offered_nothing); " +
			"1 had nothing to resume: no ticket had been issued before it started"},
		{"capture: TLS 1.2 server, new processes", []*ConnRecord{
			captureRecord(0, AttemptNone, 0x0303, false),
			captureRecord(100, AttemptNone, 0x0303, false),
			captureRecord(200, AttemptNone, 0x0303, false),
		}, "2 of 3 offered nothing to a TLS 1.2 server that had issued a session ID or ticket before; 1 had nothing to resume: the first connection"},
		{"capture: session IDs, one refused", []*ConnRecord{
			captureRecord(0, AttemptNone, 0x0303, false),
			captureRecord(100, AttemptSessionID, 0x0303, true),
			captureRecord(200, AttemptSessionID, 0x0303, true),
			captureRecord(300, AttemptSessionID, 0x0303, false),
		}, "2 of 4 resumed by session ID; 1 offered a session ID the server did not resume; 1 had nothing to resume: the first connection"},
		{"capture: answer not seen", []*ConnRecord{
			captureRecord(0, AttemptNone, 0x0304, false),
			captureRecord(100, AttemptPSK, 0, false),
		}, "1 of 2 got an answer the capture does not show far enough to tell; 1 had nothing to resume: the first connection"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sums := Summarize(tt.recs)
			if len(sums) != 1 {
				t.Fatalf("%d rows", len(sums))
			}
			if sums[0].WhyNot != tt.want {
				t.Errorf("why not\n %q\nwant\n %q", sums[0].WhyNot, tt.want)
			}
		})
	}
}

// TestReportPortsLog: `tlsresume report` over a real --log (the issue's
// scenario: curl, openssl s_client, Python, headless Chromium and Go
// through the proxy to openssl s_server origins on 9444, TLS 1.3 with
// tickets; 9445, TLS 1.2 without; 9447, TLS 1.2 with), against a golden
// file (go test ./inspect -run TestReportPortsLog -update rewrites it); no
// line over 120 columns.
func TestReportPortsLog(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "ports_log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, bad, _, err := ReadLog(f)
	if err != nil || bad != 0 {
		t.Fatalf("ReadLog: %d bad, %v", bad, err)
	}
	sums := Summarize(recs)
	why := map[string]string{}
	for _, s := range sums {
		why[s.Program+" "+s.Host] = s.WhyNot
	}
	for row, want := range map[string]string{
		// 12 of its 27 offered nothing: 10 with an unused ticket, 1 after
		// every ticket had gone to another connection, 1 before any.
		"HeadlessChrome/156 localhost:9444": "15 of 27 resumed; 10 offered nothing although a ticket issued before they started was still unused (client_offered_nothing); 1 offered nothing: every ticket issued before it started had been brought back by another connection; 1 had nothing to resume: no ticket had been issued before it started",
		"curl/7.88.1 localhost:9444":        "3 of 5 offered nothing although a ticket issued before they started was still unused (client_offered_nothing); 1 resumed; 1 had nothing to resume: no ticket had been issued before it started",
		// s_client on each port: resumed by PSK, then a TLS 1.2 origin
		// without tickets, then one with.
		"t13d31··00_e8f1e7e78f70 localhost:9444": "resumes (2 of 3; the other had nothing to resume yet)",
		"t13d31··00_e8f1e7e78f70 localhost:9445": "the one connection could not resume: tlsresume issues no tickets here, as the origin issues none and tlsresume mirrors it (client_tickets_disabled); upstream: the one connection met an origin that issues no tickets (upstream_no_ticket)",
		"t13d31··00_e8f1e7e78f70 localhost:9447": "resumes (2 of 3; the other had nothing to resume yet)",
	} {
		if why[row] != want {
			t.Errorf("%s: why not\n %q\nwant\n %q", row, why[row], want)
		}
	}
	var out bytes.Buffer
	if err := WriteSummaries(&out, sums); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if runeLen(line) > 120 {
			t.Errorf("line of %d columns: %q", runeLen(line), line)
		}
	}
	golden := filepath.Join("testdata", "report_ports.txt")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if out.String() != string(want) {
		t.Errorf("WriteSummaries:\n%s\nwant (%s):\n%s", out.String(), golden, want)
	}
}

// TestLikelyProgram: a row's likely program comes from the JA4 table,
// whatever its User-Agent says; the table shows it under a program named
// by its JA4 only.
func TestLikelyProgram(t *testing.T) {
	iphone := whyRecord("c1", 0, 10, appleJA4, "", "")
	app := whyRecord("c2", 0, 10, "t13d1517h2_8daaf6152771_cb7bf5808d99", "MyApp/1.0 CFNetwork/1494 Darwin/23.0", "")
	app.ClientAddr = "10.0.0.9:1"
	sums := Summarize([]*ConnRecord{iphone, app})
	if sums[0].Program != "t13d26··h2_2802a3db6c62" || sums[0].LikelyProgram != "likely Safari/URLSession (JA4 table)" ||
		sums[1].LikelyProgram != "likely Chromium (JA4 table)" {
		t.Errorf("rows %q %q, %q %q", sums[0].Program, sums[0].LikelyProgram, sums[1].Program, sums[1].LikelyProgram)
	}
	var out bytes.Buffer
	WriteSummaries(&out, sums)
	if !strings.Contains(out.String(), "    likely Safari/URLSession (JA4 table)\n") || strings.Contains(out.String(), "likely Chromium") {
		t.Errorf("table:\n%s", out.String())
	}
}

// BenchmarkSummarizeOneRow: 50,000 connections of one program to one host
// (a live view's history), each a ticket issued and half brought back: the
// why-not sweeps the row once, after a sort.
func BenchmarkSummarizeOneRow(b *testing.B) {
	var recs []*ConnRecord
	for i := range 50_000 {
		from := ""
		if i%2 == 1 {
			from = fmt.Sprintf("c%d", i)
		}
		recs = append(recs, whyRecord(fmt.Sprintf("c%d", i+1), float64(i*20), 5, curlJA4, "curl/7.88.1", from))
	}
	b.ReportAllocs()
	for b.Loop() {
		if s := Summarize(recs); len(s) != 1 {
			b.Fatalf("%d rows", len(s))
		}
	}
}

// TestLikelyProgramInDiffAndTable: a diff's sides list their likely
// programs (the text names them only for programs without a User-Agent),
// and inspect's table names the likely program of each hello.
func TestLikelyProgramInDiffAndTable(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "ports_log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, _, _, _ := ReadLog(f)
	a, _ := ParseSelector("program=curl")
	b, _ := ParseSelector("host=localhost:9447")
	d, err := CompareSelected(recs, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.A.LikelyPrograms, ",") != "likely curl/OpenSSL 3.0 (JA4 table)" || strings.Join(d.B.LikelyPrograms, ",") != "likely curl/OpenSSL 3.0 (JA4 table)" {
		t.Errorf("likely programs %q, %q", d.A.LikelyPrograms, d.B.LikelyPrograms)
	}
	var out bytes.Buffer
	WriteDiff(&out, d)
	head := strings.SplitN(out.String(), "\n\n", 2)[0]
	if strings.Count(head, "likely curl/OpenSSL 3.0") != 1 || !strings.Contains(head, "localhost:9447 · likely curl/OpenSSL 3.0 (JA4 table)") {
		t.Errorf("diff's head:\n%s", head)
	}
	out.Reset()
	tw := NewTableWriter(&out)
	tw.Write(&whyRecord("c1", 0, 10, appleJA4, "", "").Record)
	if !strings.Contains(out.String(), "likely Safari/URLSession (JA4 table)") {
		t.Errorf("inspect's table:\n%s", out.String())
	}
}
