package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"golang.org/x/net/http2"
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

// dialFrom opens a TCP connection to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedSoon says whether the proxy closes c within d (it reads EOF or a
// reset rather than timing out).
func closedSoon(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	ne, ok := err.(net.Error)
	return !(ok && ne.Timeout())
}

// getVia fetches https://origin.test/ through the proxy from the loopback
// address from, and returns how long it took.
func getVia(t *testing.T, e *testEnv, from, target string) time.Duration {
	t.Helper()
	start := time.Now()
	raw := dialFrom(t, from, e.addr)
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
	br := make([]byte, len(connectOK))
	if _, err := io.ReadFull(raw, br); err != nil || string(br) != connectOK {
		t.Fatalf("CONNECT: %q %v", br, err)
	}
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
	b, err := io.ReadAll(tc)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		t.Fatalf("GET through the proxy: %v %q", err, testtoolTail(string(b)))
	}
	return time.Since(start)
}

func testtoolTail(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// TestOutsideAllowHoldsNoSlot: peers outside --allow are closed at accept
// and never take one of the --max-conns slots, so twenty of them do not
// delay an allowed client (they made it wait 9.5 s when the allow-list was
// checked after the request).
func TestOutsideAllowHoldsNoSlot(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.MaxConns = 5
	})
	var outsiders []net.Conn
	for range 20 {
		outsiders = append(outsiders, dialFrom(t, "127.0.0.1", e.addr))
	}
	for i, c := range outsiders {
		if !closedSoon(c, 2*time.Second) {
			t.Fatalf("outsider %d still open after 2 s", i)
		}
	}
	if took := getVia(t, e, "127.0.0.2", o.addr); took > 2*time.Second {
		t.Errorf("the allowed client took %v", took)
	}
	if a := e.srv.Admission(); a.NotAllowed != 20 || a.AtCap != 0 {
		t.Errorf("admission %+v, want 20 not allowed", a)
	}
	e.next()
}

// TestCapEvictsSilentSockets: at --max-conns, sockets that never sent a
// request or hello are evicted for a real client, which is served at once
// (1,100 silent sockets delayed a request by 8.5 s, and at a cap of 5 the
// sixth client waited for one to close).
func TestCapEvictsSilentSockets(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.MaxConns = 5 })
	// A silent CONNECT tunnel (no hello yet) is evictable too: the oldest
	// goes first.
	tunnel := e.connect(o.addr)
	defer tunnel.Close()
	var silent []net.Conn
	for range 20 {
		silent = append(silent, dialFrom(t, "127.0.0.1", e.addr))
	}
	for range 3 {
		if took := getVia(t, e, "127.0.0.1", o.addr); took > 2*time.Second {
			t.Errorf("a client behind %d silent sockets took %v", len(silent), took)
		}
	}
	if a := e.srv.Admission(); a.Evicted < 16 || a.AtCap != 0 {
		t.Errorf("admission %+v, want at least 16 evicted and none refused", a)
	}
	if !closedSoon(tunnel, 2*time.Second) {
		t.Fatal("the silent tunnel was not evicted")
	}
	// Four records: the tunnel's says it was evicted; the clients' are whole.
	for range 4 {
		r := e.next()
		evicted := strings.Contains(r.Error, "evicted: --max-conns")
		if tunnelRec := r.ClientAddr == tunnel.LocalAddr().String(); evicted != tunnelRec {
			t.Errorf("record %s from %s (the tunnel: %v): error %q, verdict %s", r.ID, r.ClientAddr, tunnelRec, r.Error, r.Verdict.Code)
		}
	}
}

// TestCapRefusesAtOnce: when every slot is held by a client that completed
// its handshake, a newcomer is told so at once (503 with the reason), and
// the established clients keep their slots.
func TestCapRefusesAtOnce(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.MaxConns = 3 })
	var held []*tls.Conn
	for range 3 {
		tc := tls.Client(e.connect(o.addr), &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		held = append(held, tc)
	}
	start := time.Now()
	c := dialFrom(t, "127.0.0.1", e.addr)
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", o.addr)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 503") || !strings.Contains(string(b), "--max-conns") {
		t.Fatalf("at the cap: %v %q (after %v)", err, b, time.Since(start))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v", took)
	}
	// The held clients still work.
	for i, tc := range held {
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(tc); err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			t.Errorf("held client %d: %v %q", i, err, testtoolTail(string(b)))
		}
		e.next()
	}
	if a := e.srv.Admission(); a.AtCap != 1 || a.Evicted != 0 {
		t.Errorf("admission %+v, want 1 refused at the cap", a)
	}
}

// TestFailurePage: when the origin cannot be used, a client is told why in
// the protocol it speaks: a 502 page over HTTP/1.1 and over h2 (it was a
// 200 and then a bare EOF), and an alert for a client that offers no HTTP.
func TestFailurePage(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	target := closedPort(t)
	t.Run("h2-only", func(t *testing.T) { // a client offering both gets HTTP/1.1
		tc := tls.Client(e.connect(target), &tls.Config{RootCAs: e.caPool(), ServerName: "origin.test", NextProtos: []string{"h2"}})
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		cc, err := (&http2.Transport{}).NewClientConn(tc)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://origin.test/", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "verdict: upstream_failed") {
			t.Errorf("%s %d %q", resp.Proto, resp.StatusCode, b)
		}
		e.next()
	})
	t.Run("no-http", func(t *testing.T) {
		tc := tls.Client(e.connect(target), &tls.Config{RootCAs: e.caPool(), ServerName: "origin.test", NextProtos: []string{"imap"}})
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		err := tc.Handshake()
		if err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Errorf("handshake: %v, want an internal_error alert", err)
		}
		if r := e.next(); r.Verdict.Code != inspect.CodeUpstreamFailed {
			t.Errorf("verdict %s", r.Verdict.Code)
		}
	})
}

// TestResetMidResponse: an origin that resets its connection in the middle
// of a response leaves an error on the upstream leg (stream_error), not on
// the client's, and the resumption verdict stands.
func TestResetMidResponse(t *testing.T) {
	addr := startTCPServer(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{originCert}, NextProtos: []string{"http/1.1"}})
		http.ReadRequest(bufio.NewReader(tc))
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
		c.(*net.TCPConn).SetLinger(0) // close with a reset
	})
	e := startProxy(t, tempDir(t), nil)
	tc := tls.Client(e.connect(addr), &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	b, _ := io.ReadAll(tc)
	r := e.next()
	t.Logf("client got %d bytes; upstream stream_error %q, client stream_error %q, verdict %s", len(b), r.UpstreamLeg.StreamError, r.ClientLeg.StreamError, r.Verdict.Code)
	if !strings.Contains(r.UpstreamLeg.StreamError, "reset") && !strings.Contains(r.UpstreamLeg.StreamError, "unexpected EOF") {
		t.Errorf("upstream_leg.stream_error %q, want the reset", r.UpstreamLeg.StreamError)
	}
	if r.ClientLeg.StreamError != "" || r.UpstreamLeg.Error != "" {
		t.Errorf("client_leg.stream_error %q, upstream_leg.error %q: the reset happened upstream, after the handshake", r.ClientLeg.StreamError, r.UpstreamLeg.Error)
	}
	if r.Verdict.Code != inspect.CodeFirstContact {
		t.Errorf("verdict %s", r.Verdict.Code)
	}
}

// TestGateOnEveryListener: the SNI and transparent listeners close peers
// outside --allow at accept too, before they take a slot (the cap's
// eviction and refusal are the same gate, tested on CONNECT above).
func TestGateOnEveryListener(t *testing.T) {
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.MaxConns = 2
	})
	for _, serve := range []func(context.Context, net.Listener) error{e.srv.ServeSNI, e.srv.ServeTransparent} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go serve(context.Background(), ln)
		for range 10 {
			if outsider := dialFrom(t, "127.0.0.1", ln.Addr().String()); !closedSoon(outsider, 2*time.Second) {
				t.Fatalf("%s: a peer outside --allow was not closed at accept", ln.Addr())
			}
		}
		ln.Close()
	}
	if a := e.srv.Admission(); a.NotAllowed != 20 || a.Evicted != 0 {
		t.Errorf("admission %+v, want 20 not allowed and none evicted (outsiders never held a slot)", a)
	}
}

// TestClientResetMidResponse: a client that resets its connection while a
// large response is still coming leaves an error on the client leg
// (stream_error), not on the origin's.
func TestClientResetMidResponse(t *testing.T) {
	big := strings.Repeat("x", 8<<20)
	addr := startTCPServer(t, func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{originCert}, NextProtos: []string{"http/1.1"}})
		http.ReadRequest(bufio.NewReader(tc))
		fmt.Fprintf(tc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big)
	})
	e := startProxy(t, tempDir(t), nil)
	raw := e.connect(addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	buf := make([]byte, 4096)
	if _, err := tc.Read(buf); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetLinger(0) // reset, with most of the response unread
	raw.Close()
	r := e.next()
	t.Logf("client stream_error %q, upstream stream_error %q", r.ClientLeg.StreamError, r.UpstreamLeg.StreamError)
	if r.ClientLeg.StreamError == "" || r.UpstreamLeg.StreamError != "" {
		t.Errorf("client_leg.stream_error %q, upstream_leg.stream_error %q: the client reset its side", r.ClientLeg.StreamError, r.UpstreamLeg.StreamError)
	}
}
