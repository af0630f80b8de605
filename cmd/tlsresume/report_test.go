package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportCLI: exit codes of `tlsresume report`, the table from a proxy
// log, and that lines which are not records are reported, not fatal.
func TestReportCLI(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "conns.jsonl")
	os.WriteFile(logFile, []byte(`{"client_addr":"127.0.0.1:5000","sni":"a.test","user_agent":"curl/7.88.1","client_hello":{"attempt":"psk","ja4":"t13d3113h2_e8f1e7e78f70_ac6b91b2c826"},"client_leg":{"resumed":true},"upstream_leg":{"resumed":true},"verdict":{"code":"both_resumed"}}
garbage
`), 0o600)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"table", []string{logFile}, 0, "curl/7.88.1", "skipped 1 lines that are not records (first: line 2)"},
		{"jsonl", []string{"--format", "jsonl", logFile}, 0, `"program":"curl/7.88.1"`, ""},
		{"missing file", []string{filepath.Join(dir, "nope")}, 2, "", "no such file"},
		{"no file", nil, 2, "", "name a JSONL file"},
		{"bad format", []string{"--format", "csv", logFile}, 2, "", "table or jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"report"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// TestReportPortsLog: `tlsresume report` over a real --log (inspect's
// testdata: curl, openssl s_client, Python, headless Chromium and Go
// through the proxy to origins on ports 9444, 9445 and 9447) prints
// inspect's golden table, one row per port; --format jsonl carries each
// row's reasons and likely program.
func TestReportPortsLog(t *testing.T) {
	log := filepath.Join("..", "..", "inspect", "testdata", "ports_log.jsonl")
	golden, err := os.ReadFile(filepath.Join("..", "..", "inspect", "testdata", "report_ports.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"report", log}, &out, &errb); code != 0 || out.String() != string(golden) {
		t.Errorf("exit %d, stderr %q, table:\n%s\nwant:\n%s", code, errb.String(), out.String(), golden)
	}
	out.Reset()
	if code := run(context.Background(), []string{"report", "--format", "jsonl", log}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		`"host":"localhost:9445"`,
		`"likely_program":"likely curl/OpenSSL 3.0 (JA4 table)"`,
		`{"key":"offered_nothing","leg":"client","conns":10,"code":"client_offered_nothing","words":"offered nothing although a ticket issued before they started was still unused"}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("jsonl lacks %s:\n%s", want, out.String())
		}
	}
}
