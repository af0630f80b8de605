package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		patterns []string
		name     string
		want     bool
	}{
		{nil, "anything.example", true},
		{[]string{"*"}, "a.b.c", true},
		{[]string{"*.example.com"}, "www.example.com", true},
		{[]string{"*.example.com"}, "a.b.example.com", true},
		{[]string{"*.example.com"}, "example.com", false},
		{[]string{"*.example.com"}, "badexample.com", false},
		{[]string{"*.Example.COM."}, "www.example.com", true},
		{[]string{"api.test"}, "api.test", true},
		{[]string{"api.test"}, "www.api.test", false},
		{[]string{"api-?.test"}, "api-1.test", true},
		{[]string{"api-?.test"}, "api-12.test", false},
		{[]string{"*cdn*"}, "img.cdn.example", true},
		{[]string{"a*b*c"}, "axxbyyc", true},
		{[]string{"a*b*c"}, "axxbyy", false},
		{[]string{"other.test", "*.example.com"}, "x.example.com", true},
	}
	for _, tc := range tests {
		if got := newMatcher(tc.patterns).match(tc.name); got != tc.want {
			t.Errorf("patterns %q, name %q: %v, want %v", tc.patterns, tc.name, got, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	resolv := func(body string) string {
		p := filepath.Join(dir, strings.ReplaceAll(body, "\n", "_")+".conf")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v4 := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name         string
		cfg          Config
		resolvConf   string
		wantUpstream string
		wantErr      string // substring; "" means no error
	}{
		{"AnswerV4 missing", Config{Upstream: "192.0.2.53"}, "", "", "AnswerV4"},
		{"AnswerV4 is IPv6", Config{AnswerV4: netip.MustParseAddr("2001:db8::1"), Upstream: "192.0.2.53"}, "", "", "AnswerV4"},
		{"AnswerV6 is IPv4", Config{AnswerV4: v4, AnswerV6: v4, Upstream: "192.0.2.53"}, "", "", "AnswerV6"},
		{"empty pattern", Config{AnswerV4: v4, Upstream: "192.0.2.53", Intercept: []string{""}}, "", "", "empty Intercept"},
		{"upstream without port", Config{AnswerV4: v4, Upstream: "192.0.2.53"}, "", "192.0.2.53:53", ""},
		{"IPv6 upstream", Config{AnswerV4: v4, Upstream: "[2001:db8::53]:5353"}, "", "[2001:db8::53]:5353", ""},
		{"upstream is a host name", Config{AnswerV4: v4, Upstream: "dns.example:53"}, "", "", "IP address"},
		{"upstream from resolv.conf", Config{AnswerV4: v4}, resolv("# comment\nsearch example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), "192.0.2.53:53", ""},
		{"resolv.conf without nameserver", Config{AnswerV4: v4}, resolv("search example\n"), "", "no nameserver"},
		{"resolv.conf missing", Config{AnswerV4: v4}, filepath.Join(dir, "none"), "", "set Upstream"},
		{"resolv.conf names this server", Config{AnswerV4: v4}, resolv("nameserver 127.0.0.1\n"), "", "is this server itself"},
		{"resolv.conf names systemd-resolved, we listen on all", Config{AnswerV4: v4}, resolv("nameserver 127.0.0.53\n"), "", "is this server itself"},
		{"loopback upstream on another port", Config{AnswerV4: v4, Listen: "0.0.0.0:5353"}, resolv("nameserver 127.0.0.1\n"), "127.0.0.1:53", ""},
		{"explicit upstream is this server", Config{AnswerV4: v4, Listen: "127.0.0.1:5300", Upstream: "127.0.0.1:5300"}, "", "", "is this server itself"},
		{"another loopback address", Config{AnswerV4: v4, Listen: "127.0.0.1:53", Upstream: "127.0.0.2:53"}, "", "127.0.0.2:53", ""},
		{"invalid Allow prefix", Config{AnswerV4: v4, Upstream: "192.0.2.53", Allow: []netip.Prefix{{}}}, "", "", "invalid Allow"},
		{"negative RateBurst", Config{AnswerV4: v4, Upstream: "192.0.2.53", RateBurst: -1}, "", "", "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.withDefaults()
			err := cfg.validate(tc.resolvConf)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "dns: "):
				t.Errorf("error %q lacks the package prefix", err)
			case err == nil && cfg.Upstream != tc.wantUpstream:
				t.Errorf("upstream %q, want %q", cfg.Upstream, tc.wantUpstream)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.Listen != "0.0.0.0:53" || c.TTL != 60 || c.ForwardTimeout.String() != "2s" || c.MaxForwards != 256 || c.MaxTCPConns != 256 || c.Now == nil ||
		c.Allow != nil || c.RateLimit != 100 || c.RateBurst != 200 || c.MaxClients != 4096 {
		t.Errorf("defaults: %+v", c)
	}
}
