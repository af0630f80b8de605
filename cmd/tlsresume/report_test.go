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
