package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestProbeLegKept: a client that offers TLS 1.3 without the
// session_ticket extension, of an origin that speaks only TLS 1.2, is
// passed through once tlsresume's own upstream handshake shows the
// origin's version. The origin saw that handshake and the upstream cache
// used it: it stays in the record, marked as a probe, beside the
// passed-through bytes' server_hello. The second connection's probe
// resumes the first's session.
func TestProbeLegKept(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	defer e.stop()
	o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
	for i := range 2 {
		raw := e.connect(o.addr)
		tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: originPool,
			SessionTicketsDisabled: true, NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("connection %d: handshake through the proxy: %v", i+1, err)
		}
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		body, err := io.ReadAll(tc)
		tc.Close()
		if err != nil || !strings.Contains(string(body), "hello from origin") {
			t.Fatalf("connection %d: response %q, %v", i+1, body, err)
		}
		r := e.next()
		if !strings.Contains(r.Passthrough, "the origin speaks TLS 1.2") {
			t.Fatalf("connection %d: passthrough %q, want the session-ID reason found after the upstream handshake", i+1, r.Passthrough)
		}
		u := r.UpstreamLeg
		if u == nil || !u.Probe || u.Version != "1.2" || u.Error != "" || u.RemoteAddr == "" {
			t.Fatalf("connection %d: upstream_leg %+v, want the probe handshake (TLS 1.2, no error)", i+1, u)
		}
		if r.ServerHello == nil || !r.ServerHello.Complete {
			t.Fatalf("connection %d: server_hello %+v, want the passed-through bytes' ServerHello", i+1, r.ServerHello)
		}
		if r.ClientLeg != nil {
			t.Fatalf("connection %d: client_leg %+v: a passed-through client has no handshake with tlsresume", i+1, r.ClientLeg)
		}
		if want := i == 1; u.Resumed != want {
			t.Errorf("connection %d: probe resumed %v, want %v (the upstream cache keeps the first probe's session)", i+1, u.Resumed, want)
		}
		if r.Verdict.Code != inspect.CodePassthroughNotResumed {
			t.Errorf("connection %d: verdict %s, want %s (the client offered nothing to resume)", i+1, r.Verdict.Code, inspect.CodePassthroughNotResumed)
		}
	}
}
