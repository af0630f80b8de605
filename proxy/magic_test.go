package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMagicHostGuard: the magic host passes the live view's guard. Through
// the proxy, a POST /flush from another site's page (an auto-submitting
// form: Origin, or Sec-Fetch-Site) is refused and the upstream cache keeps
// its sessions, while the magic host's own page may flush; sent straight
// to the proxy's port, a Host that is not tlsresume.proxy, localhost or an
// IP address (DNS rebinding) cannot read /stats or flush.
func TestMagicHostGuard(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	o := startOrigin(t, nil)
	e.goGet("origin.test", o.addr, nil, 0) // one session in the upstream cache
	e.next()
	if n := e.srv.cfg.Upstream.Stats().Entries; n == 0 {
		t.Fatal("the upstream cache holds no session to flush")
	}
	_, port, _ := net.SplitHostPort(e.addr)
	for _, tt := range []struct {
		name   string
		direct bool // sent to the proxy's port in origin form, not through it
		method string
		path   string
		header string
		want   int
	}{
		{"cross-site form POST", false, "POST", "/flush", "Origin: http://evil.example", http.StatusForbidden},
		{"cross-site fetch POST", false, "POST", "/flush", "Sec-Fetch-Site: cross-site", http.StatusForbidden},
		{"null origin POST", false, "POST", "/flush", "Origin: null", http.StatusForbidden},
		{"cross-site stats", false, "GET", "/stats", "Sec-Fetch-Site: cross-site", http.StatusForbidden},
		{"rebinding stats", true, "GET", "/stats", "Host: evil.example:" + port, http.StatusMisdirectedRequest},
		{"rebinding flush", true, "POST", "/flush", "Host: evil.example:" + port, http.StatusMisdirectedRequest},
		{"rebinding page", true, "GET", "/", "Host: evil.example", http.StatusMisdirectedRequest},
		{"stats through the proxy", false, "GET", "/stats", "", http.StatusOK},
		{"stats by address", true, "GET", "/stats", "Host: " + e.addr, http.StatusOK},
		{"stats by localhost", true, "GET", "/stats", "Host: localhost:" + port, http.StatusOK},
		{"page by magic name", true, "GET", "/", "Host: " + MagicHost, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := magicRequest(t, e.addr, tt.direct, tt.method, tt.path, tt.header)
			if code != tt.want {
				t.Errorf("%s %s (%s): %d, want %d: %s", tt.method, tt.path, tt.header, code, tt.want, body)
			}
			if code == http.StatusOK && tt.path == "/stats" && !strings.Contains(body, "upstream_cache") {
				t.Errorf("/stats: %s", body)
			}
		})
	}
	if n := e.srv.cfg.Upstream.Stats().Entries; n == 0 {
		t.Fatal("a refused flush emptied the upstream cache")
	}
	code, body := magicRequest(t, e.addr, false, "POST", "/flush", "Origin: http://"+MagicHost+"\r\nSec-Fetch-Site: same-origin")
	if code != http.StatusOK || e.srv.cfg.Upstream.Stats().Entries != 0 {
		t.Errorf("the magic page's own POST /flush: %d %s; %d sessions left", code, body, e.srv.cfg.Upstream.Stats().Entries)
	}
}

// magicRequest sends one request to the magic host: through the proxy in
// absolute form (http://tlsresume.proxy/path), or straight to the proxy's
// port in origin form, with header lines (a Host line replaces the
// default) and returns the status and body.
func magicRequest(t *testing.T, proxyAddr string, direct bool, method, path, header string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	target, host := "http://"+MagicHost+path, MagicHost
	if direct {
		target, host = path, proxyAddr
	}
	lines := "Content-Length: 0\r\nConnection: close\r\n"
	if header != "" {
		lines += header + "\r\n"
	}
	if !strings.Contains(header, "Host: ") {
		lines += "Host: " + host + "\r\n"
	}
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\n%s\r\n", method, target, lines)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
