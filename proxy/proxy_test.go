package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
)

// TestResumeBothLegs: a Go client with a session cache connects twice on
// fresh connections; the first is first contact on both legs, the second
// resumes on both, and the record agrees with what the client and the
// origin each saw.
func TestResumeBothLegs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version uint16
		psk     inspect.Attempt
	}{
		{"tls1.3", tls.VersionTLS13, "psk"},
		{"tls1.2", tls.VersionTLS12, "ticket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tt.version })
			e := startProxy(t, tempDir(t), nil)
			cache := tls.NewLRUClientSessionCache(8)
			for i := range 3 {
				resumed, body := e.goGet("origin.test", o.addr, cache, 0)
				if !strings.Contains(body, "hello from origin") {
					t.Fatalf("body %q", body)
				}
				r := e.next()
				if r.ClientLeg.Resumed != resumed {
					t.Errorf("conn %d: record says client resumed=%v, the client says %v", i, r.ClientLeg.Resumed, resumed)
				}
				wantResumed := i > 0
				if resumed != wantResumed || r.UpstreamLeg.Resumed != wantResumed {
					t.Errorf("conn %d: client resumed %v, upstream resumed %v; want %v (verdict %+v)", i, resumed, r.UpstreamLeg.Resumed, wantResumed, r.Verdict)
				}
				if r.ClientLeg.Version != r.UpstreamLeg.Version || r.ClientLeg.Version != map[uint16]string{tls.VersionTLS13: "1.3", tls.VersionTLS12: "1.2"}[tt.version] {
					t.Errorf("conn %d: client leg %s, upstream %s: the client leg must mirror the origin", i, r.ClientLeg.Version, r.UpstreamLeg.Version)
				}
				want := inspect.CodeFirstContact
				if i > 0 {
					want = inspect.CodeBothResumed
					if r.ClientLeg.TicketFrom == "" || r.UpstreamLeg.SessionFrom == "" || r.UpstreamLeg.Offered != tt.psk {
						t.Errorf("conn %d: lineage missing: %+v %+v", i, r.ClientLeg, r.UpstreamLeg)
					}
				}
				if r.Verdict.Code != want {
					t.Errorf("conn %d: verdict %s (%s), want %s", i, r.Verdict.Code, r.Verdict.Text, want)
				}
			}
			if got := o.resumed.Load(); got != 2 {
				t.Errorf("origin counted %d resumptions, want 2", got)
			}
		})
	}
}

// TestOriginWithoutTickets: an origin that issues no tickets cannot be
// resumed by Go's client (TLS 1.2 session IDs are not supported); the
// record says so, and the client leg mirrors it by issuing no tickets.
func TestOriginWithoutTickets(t *testing.T) {
	o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12; c.SessionTicketsDisabled = true })
	e := startProxy(t, tempDir(t), nil)
	cache := tls.NewLRUClientSessionCache(8)
	e.goGet("origin.test", o.addr, cache, 0)
	first := e.next()
	if first.UpstreamLeg.TicketsReceived != 0 {
		t.Fatalf("origin sent %d tickets", first.UpstreamLeg.TicketsReceived)
	}
	resumed, _ := e.goGet("origin.test", o.addr, cache, 0)
	r := e.next()
	if resumed || r.UpstreamLeg.Resumed {
		t.Fatalf("resumed without tickets")
	}
	if r.Verdict.Upstream != inspect.CodeUpstreamNoTicket || r.Mirrored.Tickets || r.Verdict.Client != inspect.CodeClientTicketsDisabled {
		t.Errorf("verdict %+v, mirrored %+v", r.Verdict, r.Mirrored)
	}
}

// TestSharedTicketKeysAcrossRestart: tickets issued before a restart are
// accepted after it, because the keys are persisted beside the CA, and the
// upstream cache file lets the upstream leg resume too.
func TestSharedTicketKeysAcrossRestart(t *testing.T) {
	o := startOrigin(t, nil)
	dir := tempDir(t)
	cacheFile := dir + "/upstream.cache"
	clientCache := tls.NewLRUClientSessionCache(8)

	up1 := newCache(t, cacheFile)
	e1 := startProxy(t, dir, func(c *Config) { c.Upstream = up1 })
	e1.goGet("origin.test", o.addr, clientCache, 0)
	e1.next()
	e1.stop()
	if err := up1.Save(); err != nil {
		t.Fatal(err)
	}

	e2 := startProxy(t, dir, func(c *Config) { c.Upstream = newCache(t, cacheFile) })
	resumed, _ := e2.goGet("origin.test", o.addr, clientCache, 0)
	r := e2.next()
	if !resumed || !r.ClientLeg.Resumed || r.ClientLeg.TicketFrom != "c1" {
		t.Errorf("client did not resume across the restart: %+v", r.ClientLeg)
	}
	if !r.UpstreamLeg.Resumed || r.UpstreamLeg.SessionFrom != "c1" {
		t.Errorf("upstream did not resume across the restart: %+v", r.UpstreamLeg)
	}
}

// TestClientTicketsOff: --client-tickets=false makes the client do a full
// handshake every time while the upstream still resumes.
func TestClientTicketsOff(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.ClientTickets = "off" })
	cache := tls.NewLRUClientSessionCache(8)
	e.goGet("origin.test", o.addr, cache, 0)
	e.next()
	resumed, _ := e.goGet("origin.test", o.addr, cache, 0)
	r := e.next()
	if resumed || r.ClientLeg.TicketsSent != 0 || !r.UpstreamLeg.Resumed {
		t.Errorf("client resumed %v, tickets sent %d, upstream resumed %v", resumed, r.ClientLeg.TicketsSent, r.UpstreamLeg.Resumed)
	}
	if r.Verdict.Client != inspect.CodeClientTicketsDisabled {
		t.Errorf("client verdict %s", r.Verdict.Client)
	}
}

// TestHTTP2ThroughProxy: an http.Transport through the proxy gets h2 when the
// origin speaks it, on a tunnel served by goproxy.
func TestHTTP2ThroughProxy(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	tr := e.proxyTransport(nil)
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + o.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if r := e.next(); r.UserAgent != "Go-http-client/2.0" {
		t.Errorf("user_agent %q, want Go's", r.UserAgent)
	} else if r.ClientLeg.ALPN != "h2" || r.UpstreamLeg.ALPN != "h2" {
		t.Errorf("ALPN client %q upstream %q", r.ClientLeg.ALPN, r.UpstreamLeg.ALPN)
	}
	if resp.ProtoMajor != 2 || !strings.Contains(string(b), "HTTP/2") {
		t.Errorf("client got %s, origin saw %q: want HTTP/2 on both legs", resp.Proto, b)
	}
}

// TestNotTLSIsTunnelled: a CONNECT payload that is not TLS goes through
// untouched and is recorded as such.
func TestNotTLSIsTunnelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c) // echo
	}()
	e := startProxy(t, tempDir(t), nil)
	c := e.connect(ln.Addr().String())
	io.WriteString(c, "SSH-2.0-test\r\n")
	buf := make([]byte, 14)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "SSH-2.0-test\r\n" {
		t.Fatalf("echo %q %v", buf, err)
	}
	c.Close()
	r := e.next()
	if r.Verdict.Code != inspect.CodeNotTLS || r.ClientHello != nil || r.BytesUp != 14 {
		t.Errorf("record %+v", r)
	}
}

// TestClientRejectsCertificate: a client that does not trust the tlsresume
// CA is recorded with the alert it sent and a plain-words verdict.
func TestClientRejectsCertificate(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test"}) // system roots: no tlsresume CA
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake succeeded without trusting the CA")
	}
	tc.Close()
	r := e.next()
	if r.Verdict.Code != inspect.CodeClientRejectedCert || r.ClientLeg.Alert == "" {
		t.Errorf("verdict %+v, alert %q", r.Verdict, r.ClientLeg.Alert)
	}
}

// TestBadInput: broken CONNECT lines, garbage and truncated hellos end
// their own connection with a recorded error and leave others working.
func TestBadInput(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.PeekTimeout = time.Second })
	for _, bad := range []string{
		"CONNECT nonsense HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n",
		"GARBAGE\r\n\r\n",
	} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, bad)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 4") {
			t.Errorf("%q got %q, want a 4xx", bad, b)
		}
	}
	// A truncated hello: the record says what was wrong.
	c := e.connect(o.addr)
	c.Write([]byte{22, 3, 1, 0x02, 0x00, 1, 0, 1})
	r := e.next()
	c.Close()
	if r.Error == "" || r.ClientHello != nil {
		t.Errorf("truncated hello recorded as %+v", r)
	}
	// And the proxy still works.
	if _, body := e.goGet("origin.test", o.addr, nil, 0); !strings.Contains(body, "hello from origin") {
		t.Errorf("proxy broken after bad input: %q", body)
	}
	e.next()
}

// TestMagicHost: the CA is downloadable at tlsresume.proxy over plain HTTP
// and over HTTPS through the proxy, and /flush empties the upstream cache.
func TestMagicHost(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	client := &http.Client{Transport: e.proxyTransport(nil), Timeout: 10 * time.Second}
	want, err := e.ca.Export(certs.FormatDER)
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"http", "https"} {
		resp, err := client.Get(scheme + "://" + MagicHost + "/ca/" + certs.FormatDER.FileName())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, want) {
			t.Errorf("%s: status %d, %d bytes; want the CA's DER", scheme, resp.StatusCode, len(b))
		}
	}
	resp, err := client.Post("http://"+MagicHost+"/flush", "text/plain", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("flush: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestRefusesLoop: a CONNECT to the proxy's own listener, by address or by
// a name that resolves to it, is refused with a 403 that says so, before
// any tunnel opens.
func TestRefusesLoop(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	_, port, _ := net.SplitHostPort(e.addr)
	for _, target := range []string{"localhost:" + port, e.addr} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "a loop") {
			t.Errorf("CONNECT %s: %d %q, want 403 naming the loop", target, resp.StatusCode, b)
		}
	}
}

// TestPassthrough: a --passthrough host is relayed untouched (the client
// sees the origin's own certificate) and the record still says whether the
// real server resumed the client, from the hellos on the wire.
func TestPassthrough(t *testing.T) {
	for _, tt := range []struct {
		name    string
		version uint16
		by      inspect.Attempt
	}{{"tls1.3", tls.VersionTLS13, "psk"}, {"tls1.2", tls.VersionTLS12, "ticket"}} {
		t.Run(tt.name, func(t *testing.T) {
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tt.version })
			e := startProxy(t, tempDir(t), func(c *Config) { c.Passthrough = []string{"*.test"} })
			cache := tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				raw := e.connect(o.addr)
				tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: originPool, ClientSessionCache: cache})
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					t.Fatalf("conn %d: %v (the client must see the origin's certificate)", i, err)
				}
				io.WriteString(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
				io.ReadAll(tc)
				resumed := tc.ConnectionState().DidResume
				tc.Close()
				r := e.next()
				if r.Passthrough == "" || r.ServerHello == nil || r.ServerHello.Resumed != resumed || resumed != (i == 1) {
					t.Fatalf("conn %d: client resumed %v; record %+v server_hello %+v", i, resumed, r.Verdict, r.ServerHello)
				}
				if i == 1 && (r.Verdict.Code != inspect.CodePassthroughResumed || *r.ServerHello.ResumedBy != tt.by) {
					t.Errorf("conn %d: verdict %+v", i, r.Verdict)
				}
			}
		})
	}
}

// TestAutoPassthrough: once a client rejects tlsresume's certificate for a
// host with an alert (it pins), that client is passed through for that
// host, and then talks to the real server, recorded with the real server's
// verdict and what triggered it. Another client program that trusts the CA
// is still intercepted (the whole host was passed through, and it then
// failed on the origin's certificate); the reset undoes it.
func TestAutoPassthrough(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.AutoPassthrough = true })
	pinned := &tls.Config{ServerName: "origin.test", RootCAs: originPool} // trusts only the origin's CA
	raw := e.connect(o.addr)
	tc := tls.Client(raw, pinned)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if tc.Handshake() == nil {
		t.Fatal("the pinned client accepted tlsresume's certificate")
	}
	tc.Close()
	if r := e.next(); r.Verdict.Code != inspect.CodeClientRejectedCert {
		t.Fatalf("first connection: %+v", r.Verdict)
	}
	raw = e.connect(o.addr)
	tc = tls.Client(raw, pinned)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("second connection not passed through: %v", err)
	}
	tc.Close()
	r := e.next()
	if !strings.Contains(r.Passthrough, "auto-passthrough: this client rejected tlsresume's certificate for origin.test with alert") || r.ServerHello == nil {
		t.Errorf("second connection: passthrough %q, server_hello %+v", r.Passthrough, r.ServerHello)
	}
	// Another program (another TLS stack: it offers ALPN) trusts the CA.
	trusting, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("a client that trusts the CA was passed through too: %v", err)
	}
	trusting.Close()
	if r := e.next(); r.Passthrough != "" {
		t.Errorf("the trusting client: passthrough %q", r.Passthrough)
	}
	if got := e.srv.AutoPassthroughs(); len(got) != 1 || got[0].Host != "origin.test" {
		t.Errorf("AutoPassthroughs %+v", got)
	}
	if n := e.srv.ResetAutoPassthrough(); n != 1 {
		t.Errorf("reset cleared %d", n)
	}
	tc = tls.Client(e.connect(o.addr), pinned)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if tc.Handshake() == nil {
		t.Error("after the reset, the pinned client was still passed through")
	}
	tc.Close()
	e.next()
}

// TestClosedAfterCertificate: a client that hangs up without an alert as
// soon as it sees our certificate (how some apps pin, but also what an
// impatient client does) is recorded as a certificate rejection, and
// --auto-passthrough passes it through after the second such hang-up.
func TestClosedAfterCertificate(t *testing.T) {
	o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
	e := startProxy(t, tempDir(t), func(c *Config) { c.AutoPassthrough = true })
	hangUp := func() *inspect.ConnRecord {
		raw := e.connect(o.addr)
		// InsecureSkipVerify: crypto/tls would otherwise send an alert for
		// the unknown CA before VerifyConnection runs. A session cache makes
		// it send session_ticket: over TLS 1.2 a client without one is
		// passed through as a session-ID client.
		tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(1),
			VerifyConnection: func(tls.ConnectionState) error {
				raw.Close() // hang up at the certificate, sending nothing
				return io.EOF
			}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake()
		r := e.next()
		if r.Verdict.Code != inspect.CodeClientRejectedCert || !r.ClientLeg.ClosedAfterCertificate {
			t.Fatalf("verdict %+v, client leg %+v", r.Verdict, r.ClientLeg)
		}
		return r
	}
	first := hangUp()
	if got := e.srv.AutoPassthroughs(); len(got) != 0 {
		t.Fatalf("passed through after one hang-up: %+v", got)
	}
	second := hangUp()
	// The same program, now trusting only the origin (as a pinning app).
	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: originPool, ClientSessionCache: tls.NewLRUClientSessionCache(1)})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("not passed through after two hang-ups: %v", err)
	}
	tc.Close()
	if r := e.next(); !strings.Contains(r.Passthrough, "twice (connections "+first.ID+", "+second.ID+")") {
		t.Errorf("third connection: passthrough %q", r.Passthrough)
	}
}

// TestProxyAuth: with Config.Auth, a CONNECT without the right
// Proxy-Authorization is answered 407, and with it the tunnel works.
func TestProxyAuth(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.Auth = "qa:secret" })
	for _, tt := range []struct {
		header string
		want   int
	}{
		{"", http.StatusProxyAuthRequired},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("qa:wrong")), http.StatusProxyAuthRequired},
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("qa:secret")), http.StatusOK},
	} {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		req := "CONNECT " + o.addr + " HTTP/1.1\r\nHost: " + o.addr + "\r\n"
		if tt.header != "" {
			req += "Proxy-Authorization: " + tt.header + "\r\n"
		}
		io.WriteString(c, req+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || resp.StatusCode != tt.want {
			t.Errorf("Proxy-Authorization %q: %v %v, want %d", tt.header, resp, err, tt.want)
		}
	}
}

// TestWebSocketThroughProxy: an HTTP/1.1 Upgrade goes through goproxy's
// tunnel to the origin, and bytes flow both ways after the 101.
func TestWebSocketThroughProxy(t *testing.T) {
	o := startOrigin(t, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	o.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, brw) // echo
	})
	e := startProxy(t, tempDir(t), nil)
	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(tc, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo after the upgrade: %q %v", buf, err)
	}
	tc.Close()
	e.next()
}
