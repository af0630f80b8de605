package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestInspectCLI: exit codes and output shapes of `tlsresume inspect`.
func TestInspectCLI(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pcap")
	f, _ := os.Create(empty)
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	f.Close()
	notPcap := filepath.Join(dir, "notes.txt")
	os.WriteFile(notPcap, []byte("hello"), 0o600)
	apple := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus", "apple", "captures", "safari.pcap")

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"no capture with TLS prints an empty table", []string{empty}, 0, "CLIENT → SERVER", "no TLS ClientHello"},
		{"missing file", []string{filepath.Join(dir, "nope.pcap")}, 2, "", "no such file"},
		{"not a capture", []string{notPcap}, 2, "", "not a pcap or pcapng"},
		{"unknown flag", []string{"--colour", empty}, 2, "", "not defined"},
		{"bad format", []string{"--format", "xml", empty}, 2, "", "table or jsonl"},
		{"no file", nil, 2, "", "name a capture"},
		{"help", []string{"--help"}, 0, "", "Examples:"},
	}
	if _, err := os.Stat(apple); err == nil {
		tests = append(tests, struct {
			name   string
			args   []string
			code   int
			stdout string
			stderr string
		}{"safari table", []string{apple}, 0, "session_id", ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"inspect"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
			for _, line := range strings.Split(out.String(), "\n") {
				if n := len([]rune(line)); n > 120 {
					t.Errorf("line of %d columns: %q", n, line)
				}
			}
		})
	}
}

// TestInspectJSONL: one JSON object per hello, with the record's fields.
func TestInspectJSONL(t *testing.T) {
	apple := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus", "apple", "captures", "iphone.pcap")
	if _, err := os.Stat(apple); err != nil {
		t.Skipf("corpus not beside the repository: %v", err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"inspect", "--format", "jsonl", apple}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 14 {
		t.Fatalf("%d records, want the 14 hellos of iphone.pcap", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["source"] != "pcap" || m["client_hello"] == nil {
			t.Fatalf("bad record %q: %v", l, err)
		}
	}
}

// TestTruncatedCapture: a capture cut short inside its last frame (pcap and
// pcapng) is read to its last complete frame: the records are written, a
// warning says so, and the exit is 1 unless --allow-truncated.
func TestTruncatedCapture(t *testing.T) {
	corpus := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	for _, name := range []string{filepath.Join("apple", "captures", "safari.pcap"), filepath.Join("captures", "latest.pcapng")} {
		whole, err := os.ReadFile(filepath.Join(corpus, name))
		if err != nil {
			t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
		}
		cut := filepath.Join(t.TempDir(), filepath.Base(name))
		os.WriteFile(cut, whole[:len(whole)-7], 0o600)
		for _, cmd := range [][]string{{"inspect", "--format", "jsonl"}, {"report"}} {
			var full, part bytes.Buffer
			if code := run(context.Background(), append(slices.Clone(cmd), filepath.Join(corpus, name)), &full, io.Discard); code != 0 {
				t.Fatalf("%s on the whole capture: exit %d", cmd[0], code)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), append(slices.Clone(cmd), cut), &part, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), "cut short inside its last frame") || !strings.Contains(stderr.String(), "--allow-truncated") {
				t.Errorf("%s %s cut short: exit %d, stderr %q", cmd[0], name, code, stderr.String())
			}
			if part.Len() == 0 || (cmd[0] == "inspect" && strings.Count(part.String(), "\n") < strings.Count(full.String(), "\n")-1) {
				t.Errorf("%s %s cut short: %d lines of output, the whole capture gives %d", cmd[0], name,
					strings.Count(part.String(), "\n"), strings.Count(full.String(), "\n"))
			}
			if code := run(context.Background(), append(append(slices.Clone(cmd), "--allow-truncated"), cut), io.Discard, io.Discard); code != 0 {
				t.Errorf("%s --allow-truncated: exit %d", cmd[0], code)
			}
		}
	}
}
