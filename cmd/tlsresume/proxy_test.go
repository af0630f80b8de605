package main

import (
	"bytes"
	"context"
	"flag"
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

// TestSampleConfig: configs/tlsresume.yaml is accepted as it is shipped.
func TestSampleConfig(t *testing.T) {
	fs := flagSetForTest()
	if err := applyConfigFile(fs, filepath.Join("..", "..", "configs", "tlsresume.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("upstream-ticket-ttl").Value.String(); got != "10m0s" {
		t.Errorf("upstream-ticket-ttl = %s", got)
	}
}

func flagSetForTest() *flag.FlagSet {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var p proxyFlags
	p.register(fs)
	return fs
}

// TestConfigLists: YAML lists become the flags' comma-separated values, and
// a flag on the command line wins over the file.
func TestConfigLists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("intercept: [\"*.example.com\", api.test]\nmax-conns: 7\n"), 0o600)
	fs := flagSetForTest()
	fs.Parse([]string{"--max-conns", "9"})
	if err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("intercept").Value.String(); got != "*.example.com,api.test" {
		t.Errorf("intercept = %q", got)
	}
	if got := fs.Lookup("max-conns").Value.String(); got != "9" {
		t.Errorf("max-conns = %s, want the command line's 9", got)
	}
}
