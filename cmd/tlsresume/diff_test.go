package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
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
			Record: inspect.Record{V: inspect.SchemaVersion, Time: t0, Source: inspect.SourceConnect,
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
