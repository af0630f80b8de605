package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// wgConf is what TestWireGuardConfig reads out of a printed configuration.
type wgConf struct{ privateKey, address, dns, publicKey, endpoint, allowed string }

// parseWGConf reads the wg-quick text the command prints, failing t on a
// line that is neither a section, a comment, blank, nor a known key.
func parseWGConf(t *testing.T, text string) wgConf {
	t.Helper()
	var c wgConf
	fields := map[string]*string{"PrivateKey": &c.privateKey, "Address": &c.address, "DNS": &c.dns,
		"PublicKey": &c.publicKey, "Endpoint": &c.endpoint, "AllowedIPs": &c.allowed}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line == "[Interface]" || line == "[Peer]" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if p := fields[k]; ok && p != nil {
			*p = v
			continue
		}
		t.Fatalf("unexpected line %q in:\n%s", line, text)
	}
	return c
}

// TestWireGuardConfig drives "tlsresume wireguard config" in a temporary CA
// directory: the first run creates the keys with private modes, a second
// run (a restart) prints the same keys, a second device gets its own, a
// group-readable key is refused, and the QR and --out forms work.
func TestWireGuardConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := runWireGuard(context.Background(), append(args, "--ca-dir", dir), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run("config", "--endpoint", "192.0.2.1:51820")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	first := parseWGConf(t, out)
	want := wgConf{address: "10.73.0.2/32, fd74:6c73:7265::2/128", dns: "10.73.0.1, fd74:6c73:7265::1",
		endpoint: "192.0.2.1:51820", allowed: "0.0.0.0/0, ::/0"}
	if first.address != want.address || first.dns != want.dns || first.endpoint != want.endpoint || first.allowed != want.allowed ||
		len(first.privateKey) != 44 || len(first.publicKey) != 44 {
		t.Errorf("config %+v, want %+v with keys", first, want)
	}
	if !strings.Contains(errOut, `created device "phone"`) || !strings.Contains(errOut, "192.0.2.1:51820 (given)") {
		t.Errorf("stderr %q: want the new device and the given endpoint named", errOut)
	}
	for _, p := range []string{"wireguard/server.key", "wireguard/devices/phone.json"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", p, fi, err)
		}
	}

	_, out, errOut = run("config", "--peer", "phone", "--endpoint", "192.0.2.1:51820")
	if again := parseWGConf(t, out); again != first || strings.Contains(errOut, "created") {
		t.Errorf("second run printed %+v (stderr %q), want the same keys as the first", again, errOut)
	}
	_, out, _ = run("config", "--peer", "tablet", "--endpoint", "192.0.2.1:51820")
	if tablet := parseWGConf(t, out); tablet.privateKey == first.privateKey || tablet.publicKey != first.publicKey ||
		tablet.address != "10.73.0.3/32, fd74:6c73:7265::3/128" {
		t.Errorf("tablet %+v: want its own key and .3, and the same server", tablet)
	}

	// Without --endpoint it picks an interface and says which.
	if code, out, errOut := run("config"); code == 0 {
		if !strings.Contains(errOut, "interface ") || parseWGConf(t, out).endpoint == "" {
			t.Errorf("chosen endpoint: stderr %q", errOut)
		}
	} else if !strings.Contains(errOut, "--endpoint") {
		t.Errorf("no interface to choose: exit %d, stderr %q; want a hint to pass --endpoint", code, errOut)
	}

	code, out, errOut = run("config", "--qr", "--endpoint", "192.0.2.1:51820")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) < 15 || !regexp.MustCompile(`^[ ▀▄█]+$`).MatchString(lines[5]) ||
		len([]rune(lines[0])) > 120 || !strings.Contains(errOut, "QR code") {
		t.Errorf("--qr: exit %d, %d lines, stderr %q", code, len(lines), errOut)
	}

	conf := filepath.Join(t.TempDir(), "phone.conf")
	if code, _, errOut := run("config", "--endpoint", "192.0.2.1:51820", "--out", conf); code != 0 {
		t.Errorf("--out: exit %d: %s", code, errOut)
	}
	if fi, err := os.Stat(conf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--out file: %v %v, want 0600", fi, err)
	}
	if b, _ := os.ReadFile(conf); parseWGConf(t, string(b)) != first {
		t.Errorf("--out wrote %q", b)
	}
	if code, _, errOut := run("config", "--endpoint", "192.0.2.1:51820", "--out", conf); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("--out over an existing file: exit %d %q, want a refusal", code, errOut)
	}

	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"config", "--peer", "My Phone"}, 2, "device name"},
		{[]string{"config", "--endpoint", "192.0.2.1"}, 1, "want HOST:PORT"},
		{[]string{"config", "--port", "0"}, 2, "--port 0"},
		{[]string{"frob"}, 2, `unknown command "frob"`},
	} {
		if code, _, errOut := run(tt.args...); code != tt.code || !strings.Contains(errOut, tt.stderr) {
			t.Errorf("%v: exit %d stderr %q, want %d and %q", tt.args, code, errOut, tt.code, tt.stderr)
		}
	}

	if err := os.Chmod(filepath.Join(dir, "wireguard/server.key"), 0o640); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run("config", "--endpoint", "192.0.2.1:51820"); code != 1 || out != "" || !strings.Contains(errOut, "accessible by other users (mode 0640)") {
		t.Errorf("group-readable server key: exit %d, stdout %q, stderr %q; want a refusal and no config", code, out, errOut)
	}
}
