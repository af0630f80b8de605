package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestProxyRefusesItsOwnListeners: the CLI tells the proxy where its live
// view and its DNS server listen, so a client of the proxy reaches neither
// through it: the token-less loopback view's ticket-key rotation, by
// forward request and by CONNECT, and the DNS server's TCP port.
func TestProxyRefusesItsOwnListeners(t *testing.T) {
	t.Setenv("TLSRESUME_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0",
			"--dns", "127.0.0.1:0", "--dns-answer", "127.0.0.1", "--dns-upstream", "127.0.0.1:1",
			"--log", filepath.Join(t.TempDir(), "conns.jsonl")}, io.Discard, &stderr)
	}()
	find := func(re *regexp.Regexp) string {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if m := re.FindStringSubmatch(stderr.String()); m != nil {
				return m[1]
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in: %s", re, stderr.String())
			}
		}
	}
	proxyAddr := find(regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)\S* \S*mode=\S*connect`))
	view := find(regexp.MustCompile(`Live view: http://(127\.0\.0\.1:\d+)/`))
	dnsAddr := find(regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)\S* \S*mode=\S*dns`))

	proxyURL, _ := url.Parse("http://" + proxyAddr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	resp, err := client.Post("http://"+view+"/api/client/ticket-keys/rotate?forget=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST to the view through the proxy: %s %q, want 403", resp.Status, b)
	}
	for _, target := range []string{view, dnsAddr} {
		c, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("CONNECT %s: %v %v, want 403", target, resp, err)
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
