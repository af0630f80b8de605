package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// handOver accepts one loopback TCP connection dialled by the test and
// hands it to HandleConn as a's Conn, on a goroutine of its own as a
// source would; it returns the client's side and a channel closed when
// HandleConn returns.
func handOver(t *testing.T, e *testEnv, a Arrival) (net.Conn, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	a.Conn, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.HandleConn(a)
	}()
	return client, done
}

// TestHandleConnResumes: connections handed over by a source the proxy
// does not listen for go to their destination as transparent ones do, and
// the second resumes on both legs; records carry the source, the device
// and dns_name, which names the host of a hello without SNI. --allow is
// not applied to them.
func TestHandleConnResumes(t *testing.T) {
	// A certificate for the name only: verified for the address, the
	// connection without SNI would fail upstream.
	named := originCA.Issue(t, tlstest.CertOptions{Names: []string{"origin.test"}}).TLS
	o := startOrigin(t, func(c *tls.Config) { c.Certificates = []tls.Certificate{named} })
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} // not loopback, the test's address
	})
	dst := netip.MustParseAddrPort(o.addr)
	cache := tls.NewLRUClientSessionCache(4)
	for i, sni := range []string{"origin.test", "origin.test", ""} {
		client, done := handOver(t, e, Arrival{Dst: dst, Source: inspect.SourceWireGuard, Device: "phone", DNSName: "origin.test"})
		cfg := &tls.Config{ServerName: sni, RootCAs: e.caPool(), ClientSessionCache: cache, NextProtos: []string{"http/1.1"}}
		if sni == "" {
			// No SNI: Go's client then verifies nothing by name; the
			// proxy verifies the origin for dns_name instead.
			cfg = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
		}
		tc := tls.Client(client, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		body, err := io.ReadAll(tc)
		if err != nil || !strings.Contains(string(body), "hello from origin") {
			t.Fatalf("connection %d: %q, %v", i+1, body, err)
		}
		<-done
		r := e.next()
		if r.Source != inspect.SourceWireGuard || r.Device != "phone" || r.DNSName != "origin.test" || r.Target != o.addr || r.SNI != sni {
			t.Errorf("connection %d: record source %q device %q dns_name %q target %q sni %q", i+1, r.Source, r.Device, r.DNSName, r.Target, r.SNI)
		}
		if r.UpstreamLeg == nil || !r.UpstreamLeg.Verified {
			t.Errorf("connection %d: upstream leg %+v: want the origin verified for origin.test", i+1, r.UpstreamLeg)
		}
		if i == 1 && r.Verdict.Code != inspect.CodeBothResumed {
			t.Errorf("second connection: verdict %s (%s), want both_resumed", r.Verdict.Code, r.Verdict.Text)
		}
	}
	if a := e.srv.Admission(); a.NotAllowed != 0 {
		t.Errorf("admission %+v: --allow was applied to a handed-over connection", a)
	}
}

// TestHandleConnRefuses: a connection the source refuses, one to
// tlsresume's own listener and one without a destination are reset
// without a byte read from them, each recorded with why.
func TestHandleConnRefuses(t *testing.T) {
	e := startProxy(t, tempDir(t), nil)
	self := netip.MustParseAddrPort(e.addr)
	for _, tt := range []struct {
		name string
		a    Arrival
		want string
	}{
		{"source", Arrival{Dst: netip.MustParseAddrPort("127.0.0.1:22"), Refuse: errors.New("refused: loopback")}, "refused: loopback"},
		{"self", Arrival{Dst: self}, "is tlsresume itself"},
		{"no destination", Arrival{}, "named no destination"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.a.Source, tt.a.Device = inspect.SourceWireGuard, "phone"
			client, done := handOver(t, e, tt.a)
			<-done
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client read %v, want a reset", err)
			}
			r := e.next()
			if !strings.Contains(r.Error, tt.want) || r.Device != "phone" || r.BytesUp != 0 || r.Verdict.Code != inspect.CodeClientNoHello {
				t.Errorf("record error %q device %q bytes_up %d verdict %s; want an error saying %q", r.Error, r.Device, r.BytesUp, r.Verdict.Code, tt.want)
			}
		})
	}
}

// TestHandleConnMaxConns: --max-conns counts handed-over connections: with
// the one slot held by a connection that sent its hello, the next is reset
// unrecorded and counted at the cap.
func TestHandleConnMaxConns(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.MaxConns = 1 })
	dst := netip.MustParseAddrPort(o.addr)
	held, heldDone := handOver(t, e, Arrival{Dst: dst, Source: inspect.SourceWireGuard})
	tc := tls.Client(held, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool()})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	client, done := handOver(t, e, Arrival{Dst: dst, Source: inspect.SourceWireGuard})
	<-done
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("over --max-conns the client read %v, want a reset", err)
	}
	if a := e.srv.Admission(); a.AtCap != 1 {
		t.Errorf("admission %+v, want one at the cap", a)
	}
	tc.Close()
	<-heldDone
	if r := e.next(); r.ClientLeg == nil || r.ClientLeg.Error != "" {
		t.Errorf("the held connection's record: %+v", r.ClientLeg)
	}
}

// TestHandleConnClientSilence: with ClientSilence, a client that sends
// nothing is relayed untouched once that time has passed, so a server
// that speaks first (an SMTP greeting) reaches it; the record says why.
func TestHandleConnClientSilence(t *testing.T) {
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
		io.WriteString(c, "220 ready\r\n")
		io.Copy(io.Discard, c)
	}()
	e := startProxy(t, tempDir(t), nil)
	client, done := handOver(t, e, Arrival{Dst: netip.MustParseAddrPort(ln.Addr().String()), Source: inspect.SourceWireGuard, ClientSilence: 200 * time.Millisecond})
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "220 ready\r\n" {
		t.Fatalf("the client read %q, %v; want the server's greeting", buf[:n], err)
	}
	client.Close()
	<-done
	if r := e.next(); r.Verdict.Code != inspect.CodeNotTLS || !strings.Contains(r.Error, "sent nothing for 200ms") {
		t.Errorf("record verdict %s error %q", r.Verdict.Code, r.Error)
	}
}
