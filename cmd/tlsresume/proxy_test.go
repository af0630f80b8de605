package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProxyRefusals: settings that would make an open proxy, or that are
// malformed, exit 2 with one line saying what to do, before listening.
func TestProxyRefusals(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("listne: 127.0.0.1:1\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--allow"},
		{[]string{"--listen", "127.0.0.1:0", "--transparent", "0.0.0.0:0"}, "--allow"},
		{[]string{"--client-tickets", "maybe"}, "want mirror, true or false"},
		{[]string{"--client-max-tls", "1.4"}, "want 1.0, 1.1, 1.2 or 1.3"},
		{[]string{"--allow", "not-a-cidr"}, "--allow"},
		{[]string{"--config", badYAML}, `unknown key "listne"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("TLSRESUME_HOME", t.TempDir())
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"proxy"}, tt.args...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tt.want)
			}
		})
	}
}
