package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCA drives "tlsresume ca" end to end in a temporary CA directory.
func TestRunCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	t.Setenv("TLSRESUME_HOME", filepath.Join(t.TempDir(), "from-env"))
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring; "" means empty output
		stderr     string
		wantStdout bool
	}{
		{"no command", nil, 2, "", "Usage: tlsresume ca COMMAND", false},
		{"help", []string{"--help"}, 0, "Commands:", "", true},
		{"unknown command", []string{"frob"}, 2, "", `unknown command "frob"`, false},
		{"flag before command", []string{"--ca-dir", dir, "show"}, 2, "", "name a command before flags", false},
		{"show before init", []string{"show", "--ca-dir", dir}, 1, "", "no CA in " + dir + "; run `tlsresume ca init`", false},
		{"init", []string{"init", "--ca-dir", dir}, 0, "created a new CA in " + dir, "", true},
		{"init again", []string{"init", "--ca-dir", dir}, 0, "a CA already exists in " + dir + "; left as it is", "", true},
		{"show", []string{"show", "--ca-dir", dir}, 0, "Certificate Trust Settings", "", true},
		{"path flag", []string{"path", "--ca-dir", dir}, 0, dir + "\n", "", true},
		{"path environment", []string{"path"}, 0, os.Getenv("TLSRESUME_HOME") + "\n", "", true},
		{"path extra argument", []string{"path", "x"}, 2, "", `unexpected argument "x"`, false},
		{"unknown flag", []string{"show", "--bogus"}, 2, "", "flag provided but not defined: -bogus", false},
		{"export pem", []string{"export", "--ca-dir", dir}, 0, "-----BEGIN CERTIFICATE-----", "", true},
		{"export der", []string{"export", "--ca-dir", dir, "--format", "der", "--out", filepath.Join(out, "ca.cer")}, 0, "wrote " + filepath.Join(out, "ca.cer") + " (der,", "", true},
		{"export mobileconfig", []string{"export", "--format", "mobileconfig", "--ca-dir", dir, "--out", filepath.Join(out, "ca.mobileconfig")}, 0, "Certificate Trust Settings", "", true},
		{"export bad format", []string{"export", "--ca-dir", dir, "--format", "p12"}, 2, "", `--format must be pem, der or mobileconfig, not "p12"`, false},
		{"export help", []string{"export", "--help"}, 0, "", "--format mobileconfig --out", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runCA(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			if tt.wantStdout != (stdout.Len() > 0) || !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q, want it to contain %q", &stdout, tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) || (tt.stderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr %q, want it to contain %q", &stderr, tt.stderr)
			}
			if tt.code == 2 && strings.Count(stderr.String(), "\n") > 1 && tt.name != "no command" {
				t.Errorf("usage error printed %d lines, want one", strings.Count(stderr.String(), "\n"))
			}
		})
	}
	der, err := os.ReadFile(filepath.Join(out, "ca.cer"))
	if err != nil || len(der) == 0 || der[0] != 0x30 {
		t.Errorf("DER export: %v, %d bytes", err, len(der))
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
}
