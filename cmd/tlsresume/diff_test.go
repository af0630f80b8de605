package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// writeLog writes records as the proxy's --log does, one JSON object per
// line.
func writeLog(t *testing.T, path string, recs []*inspect.ConnRecord) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// storyLog is the URLSession report as the proxy would log it: an app
// that never brings back the tickets it is sent (c1, c2), and curl, which
// resumes with the ticket c3 got (c4).
func storyLog() []*inspect.ConnRecord {
	t0 := time.Date(2025, 8, 20, 10, 0, 0, 0, time.UTC)
	app := &inspect.ClientHelloRecord{LegacyVersion: 0x0303, SessionIDLen: 32, SupportedVersions: []int{0x0304, 0x0303},
		Extensions: []int{0, 23, 0xff01, 10, 11, 16, 5, 13, 18, 51, 45, 43, 27}, PSKKeyExchangeModes: []int{1},
		Attempt: inspect.AttemptNone, JA4: "t13d2014h2_a09f3c656075_e42f34c56612"}
	curl := func(resume bool) *inspect.ClientHelloRecord {
		h := &inspect.ClientHelloRecord{LegacyVersion: 0x0303, SessionIDLen: 32, SupportedVersions: []int{0x0304, 0x0303},
			Extensions: []int{0xff01, 0, 11, 10, 35, 16, 22, 23, 13, 43, 45, 51}, PSKKeyExchangeModes: []int{1},
			SessionTicket: inspect.SessionTicketFact{Offered: true}, Attempt: inspect.AttemptNone, JA4: "t13d3012h2_1d37bd780c83_882d495ac381"}
		if resume {
			h.Extensions = append(h.Extensions, 41)
			h.PreSharedKey = inspect.PSKFact{Offered: true, Identities: []inspect.PSKIdentity{{Len: 192}}, Binders: 1}
			h.Attempt, h.JA4 = inspect.AttemptPSK, "t13d3013h2_1d37bd780c83_b26ce05bbdd6"
		}
		return h
	}
	rec := func(id string, ua string, ch *inspect.ClientHelloRecord, leg inspect.ClientLeg, v inspect.VerdictCode) *inspect.ConnRecord {
		return &inspect.ConnRecord{
			Record: inspect.Record{V: inspect.SchemaVersion, Time: t0.Add(time.Duration(id[1]-'0') * time.Second), Source: inspect.SourceConnect,
				ClientAddr: "127.0.0.1:50" + id[1:], SNI: "api.test", ClientHello: ch},
			ID: id, Target: "api.test:443", UserAgent: ua, ClientLeg: &leg, UpstreamLeg: &inspect.UpstreamLeg{},
			Verdict: inspect.Verdict{Code: v, Client: v},
		}
	}
	sent := inspect.ClientLeg{Version: "1.3", TicketsSent: 1, Ticket: inspect.TicketNone}
	back := inspect.ClientLeg{Version: "1.3", TicketsSent: 1, Ticket: inspect.TicketOurs, Resumed: true, TicketFrom: "c3", TicketAgeMS: 900}
	return []*inspect.ConnRecord{
		rec("c1", "MyApp/1.0 CFNetwork/1494 Darwin/23.0", app, sent, inspect.CodeClientFirstContact),
		rec("c2", "MyApp/1.0 CFNetwork/1494 Darwin/23.0", app, sent, inspect.CodeClientOfferedNothing),
		rec("c3", "curl/8.5.0", curl(false), sent, inspect.CodeClientFirstContact),
		rec("c4", "curl/8.5.0", curl(true), back, inspect.CodeClientResumed),
	}
}

// TestDiffCLI: exit codes and output of `tlsresume diff` over a proxy log.
func TestDiffCLI(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "conns.jsonl")
	writeLog(t, logFile, storyLog())
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // substrings
	}{
		{"text", []string{logFile, "--a", "program=myapp", "--b", "program=curl"}, 0,
			"B brought back the ticket c3 issued; A offered no PSK although tlsresume sent it 2 tickets", ""},
		{"flags first", []string{"--a", "conn=c2", "--b", "conn=c4", logFile}, 0, "≠ pre_shared_key", ""},
		{"fingerprints folded", []string{logFile, "--a", "program=myapp", "--b", "program=curl"}, 0, "--all shows every value", ""},
		{"all", []string{"--all", logFile, "--a", "program=myapp", "--b", "program=curl"}, 0, "only A sends", ""},
		{"json", []string{"--format", "json", logFile, "--a", "program=myapp", "--b", "program=curl"}, 0, `"selector":"program=myapp"`, ""},
		{"no match", []string{logFile, "--a", "program=foo", "--b", "program=curl"}, 1, "", "no record matches --a program=foo (4 records read)"},
		{"no match b", []string{logFile, "--a", "program=curl", "--b", "conn=c9"}, 1, "", "no record matches --b conn=c9"},
		{"no --b", []string{logFile, "--a", "program=curl"}, 2, "", "--b is required"},
		{"bad selector", []string{logFile, "--a", "prog=curl", "--b", "program=curl"}, 2, "", `--a: inspect: selector "prog=curl": unknown key "prog"`},
		{"bad format", []string{logFile, "--a", "conn=c1", "--b", "conn=c2", "--format", "yaml"}, 2, "", "text or json"},
		{"no file", []string{"--a", "conn=c1", "--b", "conn=c2"}, 2, "", "name a JSONL file"},
		{"missing file", []string{filepath.Join(dir, "nope"), "--a", "conn=c1", "--b", "conn=c2"}, 2, "", "no such file"},
		{"help", []string{"--help"}, 0, "", "--a program=MyApp --b program=curl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"diff"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
			if tt.code == 2 && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("usage error printed %q, want one line", errb.String())
			}
			if tt.name != "json" {
				checkWidth(t, out.String())
			}
		})
	}
}

// TestDiffJSON: --format json is the Diff, rows and all.
func TestDiffJSON(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "conns.jsonl")
	writeLog(t, logFile, storyLog())
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"diff", "--format", "json", logFile, "--a", "conn=c2", "--b", "conn=c4"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var d inspect.Diff
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.A.Selector != "conn=c2" || d.A.Conns != 1 || d.B.Programs[0] != "curl/8.5.0" {
		t.Errorf("sides %+v %+v", d.A, d.B)
	}
	for _, r := range d.Rows {
		if r.Field == "tickets_brought_back" && (!r.Differs || r.B != "1 of 1: c3 → c4") {
			t.Errorf("row %+v", r)
		}
	}
}

// checkWidth fails t for a line over 120 columns.
func checkWidth(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 120 {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
}

// TestDiffCorpus: Apple's hellos (an iPhone's apps and Safari) against
// Firefox's in the public corpus: real captures, read directly.
func TestDiffCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	if _, err := os.Stat(filepath.Join(dir, "ground_truth.jsonl")); err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	files := []string{filepath.Join(dir, "apple", "captures", "iphone.pcap"), filepath.Join(dir, "apple", "captures", "safari.pcap"),
		filepath.Join(dir, "captures", "latest.pcapng")}
	var out, errb bytes.Buffer
	args := append([]string{"diff", "--a", "program=t13d26", "--b", "program=t13d15"}, files...)
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	checkWidth(t, out.String())
	for _, want := range []string{
		"A: program=t13d26 · 14 connections, 14 hellos",
		"≠ pre_shared_key         in none of 14 hellos",
		"A never offers a pre_shared_key, so it never tries TLS 1.3 resumption; B offers one in 1 of 4 hellos",
		"  psk_key_exchange_modes psk_dhe_ke",
		"TLS 1.3 ones are", // tickets: encrypted in a capture
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
	// Safari resuming by session ID over TLS 1.2, against the iPhone's TLS 1.3.
	out.Reset()
	args = append([]string{"diff", "--a", "host=www.iit", "--b", "program=t13d26"}, files...)
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"A offers no TLS 1.3: it can resume only by a TLS 1.2 ticket (RFC 5077) or a session ID, never by a PSK, while B",
		"session_id in 5, none in 2 of 7 connections",
		"A resumed 5 of its 7 handshakes and B none of its 14 handshakes",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff lacks %q:\n%s", want, out.String())
		}
	}
}

// The real-client test: a Go TLS server on loopback, real clients, a real
// capture (tlstest.StartCapture), read back by `tlsresume diff` and `report`.

// startTLSServer serves TLS on 127.0.0.1 with crypto/tls defaults (TLS 1.3,
// one ticket per handshake to clients that send psk_dhe_ke): each
// connection reads one HTTP request and gets a short response, so clients
// read their tickets before the server closes. It returns the port and the
// certificate's pool; Cleanup waits for every connection.
func startTLSServer(t *testing.T, names ...string) (int, *x509.CertPool) {
	t.Helper()
	cert := tlstest.NewCert(t, tlstest.CertOptions{Names: names, CA: true})
	pool := cert.Pool()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return // a capture's marker connection carries no TLS
				}
				br := bufio.NewReader(tc)
				for {
					line, err := br.ReadString('\n')
					if err != nil || strings.TrimSpace(line) == "" {
						break
					}
				}
				io.WriteString(tc, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
				tc.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port, pool
}

const httpRequest = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"

// sClient runs `openssl s_client` once against the server as name and
// returns what it printed.
func sClient(ctx context.Context, t *testing.T, openssl string, port int, name string, extra ...string) string {
	t.Helper()
	args := append([]string{"s_client", "-connect", fmt.Sprintf("127.0.0.1:%d", port), "-servername", name, "-ign_eof"}, extra...)
	cmd := exec.CommandContext(ctx, openssl, args...)
	cmd.Stdin = strings.NewReader(httpRequest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// goClientNoTickets connects with crypto/tls with tickets disabled: no
// session_ticket and no psk_key_exchange_modes in its hello
// (handshake_client.go, loadSession).
func goClientNoTickets(t *testing.T, port int, pool *x509.CertPool) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
		&tls.Config{ServerName: "go.test", RootCAs: pool, SessionTicketsDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, httpRequest)
	io.Copy(io.Discard, c)
}

// TestDiffRealClients: OpenSSL resuming with -sess_out/-sess_in (session_ticket
// and then a PSK), OpenSSL with -no_ticket and no saved session (the
// URLSession pattern: psk_dhe_ke but no session_ticket and never a PSK), and
// Go with tickets disabled (no psk_key_exchange_modes at all), each under its
// own SNI; their capture read back by diff and report.
func TestDiffRealClients(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	port, pool := startTLSServer(t, "openssl.test", "urlsession.test", "go.test")
	capture := tlstest.StartCapture(ctx, t, port, filepath.Join(dir, "clients.pcap"))

	sess := filepath.Join(dir, "openssl.sess")
	sClient(ctx, t, openssl, port, "openssl.test", "-sess_out", sess)
	if out := sClient(ctx, t, openssl, port, "openssl.test", "-sess_in", sess); !strings.Contains(out, "Reused, TLSv1.3") {
		t.Fatalf("s_client -sess_in did not resume: %s", out)
	}
	for range 2 {
		sClient(ctx, t, openssl, port, "urlsession.test", "-no_ticket")
		goClientNoTickets(t, port, pool)
	}
	if err := capture.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	diff := func(a, b string) string {
		out.Reset()
		if code := run(ctx, []string{"diff", capture.Path, "--a", a, "--b", b}, &out, &errb); code != 0 {
			t.Fatalf("diff exit %d: %s", code, errb.String())
		}
		checkWidth(t, out.String())
		return out.String()
	}
	contains := func(text string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("lacks %q:\n%s", w, text)
			}
		}
	}
	contains(diff("host=urlsession", "host=openssl"),
		"≠ session_ticket         absent in 2 of 2 hellos",
		"A sends no session_ticket extension: over TLS 1.3 that costs nothing",
		"≠ pre_shared_key         in none of 2 hellos                             in 1 of 2 hellos (1 identity)",
		"  psk_key_exchange_modes psk_dhe_ke                                      psk_dhe_ke",
		"≠ client_resumed         0 of 2                                          1 of 2",
		"B offered a ticket or PSK in 1 of 2 connections; A offered no ticket or PSK in any of its 2 hellos",
	)
	contains(diff("host=go", "host=openssl"),
		"≠ psk_key_exchange_modes absent                                          psk_dhe_ke",
		"A sends no psk_key_exchange_modes: a TLS 1.3 server sends it no tickets (RFC 8446, Section 4.2.9)",
	)

	out.Reset()
	if code := run(ctx, []string{"report", "--format", "jsonl", capture.Path}, &out, &errb); code != 0 {
		t.Fatalf("report exit %d: %s", code, errb.String())
	}
	why := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var s inspect.Summary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		name, _, _ := strings.Cut(s.Host, ":") // the server's port is not 443
		why[name] = s.WhyNot
	}
	for host, want := range map[string]string{
		"openssl.test":    "resumes by PSK (1 of 2; the other had nothing to resume yet)",
		"urlsession.test": "1 of 2 offered nothing (whether the server had sent tickets is not in a capture: TLS 1.3 encrypts them); 1 had nothing to resume: the first connection",
		"go.test":         "1 of 2 sent no psk_key_exchange_modes, so a TLS 1.3 server sends no tickets; 1 had nothing to resume: the first connection",
	} {
		if why[host] != want {
			t.Errorf("report: %s: why not %q, want %q", host, why[host], want)
		}
	}
}

// TestLoadRecords: JSONL and pcap/pcapng told apart by their first bytes;
// records without an id numbered p1, p2, … across files, a capture's in
// the order its hellos were sent; what is not a record is a warning.
func TestLoadRecords(t *testing.T) {
	corpus := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	safari := filepath.Join(corpus, "apple", "captures", "safari.pcap")
	latest := filepath.Join(corpus, "captures", "latest.pcapng")
	if _, err := os.Stat(safari); err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	dir := t.TempDir()
	logFile := filepath.Join(dir, "conns.jsonl")
	writeLog(t, logFile, storyLog())
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("hello\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)

	recs, warnings, truncated, err := loadRecords([]string{logFile, safari, latest, notes, empty})
	if err != nil || truncated {
		t.Fatal(err, truncated)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "notes.txt: skipped 1 lines") {
		t.Errorf("warnings %q", warnings)
	}
	if len(recs) < 4+7+1 || recs[0].ID != "c1" || recs[4].ID != "p1" || recs[4].Source != inspect.SourcePcap || recs[11].ID != "p8" {
		t.Fatalf("%d records; ids %s %s %s", len(recs), recs[0].ID, recs[4].ID, recs[11].ID)
	}
	for i := 5; i < 11; i++ {
		if recs[i].Time.Before(recs[i-1].Time) {
			t.Errorf("safari's records out of order at %d", i)
		}
	}

	if _, _, _, err := loadRecords([]string{filepath.Join(dir, "nope")}); err == nil || inputExit(err) != 2 {
		t.Errorf("missing file: %v", err)
	}
	broken := filepath.Join(dir, "broken.pcap")
	os.WriteFile(broken, []byte{0xd4, 0xc3, 0xb2, 0xa1, 1, 2}, 0o600)
	if _, _, _, err := loadRecords([]string{broken}); err == nil || !strings.Contains(err.Error(), "broken.pcap: pcap: ") {
		t.Errorf("broken capture: %v", err) // exit 1, as inspect gives
	}
}

// TestReportCapture: report reads a capture directly, and its why-not
// says what the capture shows.
func TestReportCapture(t *testing.T) {
	safari := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus", "apple", "captures", "safari.pcap")
	if _, err := os.Stat(safari); err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"report", safari}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	checkWidth(t, out.String())
	if !strings.Contains(out.String(), "www.iit.cnr.it             tcp  5     session_id 5             5/5     -\n") ||
		!strings.Contains(out.String(), "    why not: resumes by session ID\n") ||
		!strings.Contains(out.String(), "    likely Safari, TLS 1.2 era (JA4 table)\n") {
		t.Errorf("report:\n%s", out.String())
	}
}

// TestQUICCaptureCLI: inspect, report and diff read the QUIC hellos of a
// capture (FoxIO's ssh2.pcapng: Chrome resuming over QUIC with 0-RTT, once
// accepted and once refused) as a user runs them.
func TestQUICCaptureCLI(t *testing.T) {
	capture := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus", "captures", "ssh2.pcapng")
	if _, err := os.Stat(capture); err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	cmd := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		if !slices.Contains(args, "jsonl") {
			checkWidth(t, out.String())
		}
		return out.String()
	}
	table := cmd("inspect", capture)
	for _, want := range []string{"meet.google.com    q1.3    psk", "its 0-RTT data was lost with the PSK", "ja4 q13d0312h3_"} {
		if !strings.Contains(table, want) {
			t.Errorf("inspect lacks %q:\n%s", want, table)
		}
	}
	quic := 0
	for _, line := range strings.Split(strings.TrimSpace(cmd("inspect", "--format", "jsonl", capture)), "\n") {
		var r inspect.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Transport == "quic" {
			quic++
			if r.QUIC == nil || r.QUIC.VersionName != "v1" || !r.EarlyDataSent || len(r.ClientHello.QUICTransportParameters) == 0 {
				t.Errorf("QUIC record %s: quic %+v, early_data_sent %v", r.SNI, r.QUIC, r.EarlyDataSent)
			}
		}
	}
	if quic != 2 {
		t.Errorf("%d QUIC records, want 2", quic)
	}
	if report := cmd("report", capture); !strings.Contains(report, " quic ") {
		t.Errorf("report has no QUIC row:\n%s", report)
	}
	if diff := cmd("diff", capture, "--a", "transport=quic", "--b", "transport=tcp"); !strings.Contains(diff, "≠ transport") {
		t.Errorf("diff does not set the transports apart:\n%s", diff)
	}
}
