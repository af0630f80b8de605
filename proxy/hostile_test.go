package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// These tests treat tlsresume as a hostile network and a careless user
// would (issue 12): silent clients, clients beyond the cap, clients
// outside --allow.

// TestIdleTimeoutEveryState: a client that goes silent in any state is
// closed after the idle timeout, with the reason in its record — the
// handshaken tunnel with and without HTTP, after one request, and a
// connection passed through.
func TestIdleTimeoutEveryState(t *testing.T) {
	o := startOrigin(t, nil)
	const idle = 700 * time.Millisecond
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.IdleTimeout = idle
		c.Passthrough = []string{"passed.test"}
	})
	cases := []struct {
		name, sni string
		alpn      []string
		request   bool
		// wantIdleError: the record says the idle timeout closed it
		// (relayed as bytes); goproxy's HTTP states end as a closed read.
		wantIdleError bool
	}{
		{name: "tls-h1-silent", sni: "origin.test", alpn: []string{"http/1.1"}},
		{name: "tls-h1-one-request-then-silent", sni: "origin.test", alpn: []string{"http/1.1"}, request: true},
		{name: "tls-no-alpn-silent", sni: "origin.test", wantIdleError: true},
		{name: "passthrough-silent", sni: "passed.test", wantIdleError: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := e.connect(o.addr)
			defer raw.Close()
			cfg := &tls.Config{ServerName: tc.sni, RootCAs: e.caPool(), NextProtos: tc.alpn}
			if tc.sni == "passed.test" {
				cfg = &tls.Config{InsecureSkipVerify: true} // the origin's own certificate
				cfg.ServerName = tc.sni
			}
			tc2 := tls.Client(raw, cfg)
			tc2.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc2.Handshake(); err != nil {
				t.Fatal(err)
			}
			if tc.request {
				fmt.Fprintf(tc2, "GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
				buf := make([]byte, 4096)
				if _, err := tc2.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_, err := io.Copy(io.Discard, tc2) // returns when tlsresume closes
			waited := time.Since(start)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("still open after %v: the idle timeout is %v", waited, idle)
			}
			// tlsresume waits up to 2 s for a client without ALPN to speak
			// (sniffHTTP), and lingers 1 s over a close.
			if waited < idle/2 || waited > idle+3*time.Second {
				t.Errorf("closed after %v, want about the idle timeout %v", waited, idle)
			}
			r := e.next()
			if tc.wantIdleError && !strings.Contains(r.Error, "idle timeout") {
				t.Errorf("record error %q, want the idle timeout named", r.Error)
			}
			if r.ClientHello == nil || (tc.sni == "origin.test" && r.Verdict.Code == inspect.CodeClientHandshakeFailed) {
				t.Errorf("record %+v", r.Verdict)
			}
			t.Logf("%s: closed after %v; record error %q, verdict %s", tc.name, waited.Round(time.Millisecond), r.Error, r.Verdict.Code)
		})
	}
}
