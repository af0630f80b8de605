package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
)

// testQUICFlow is a QUIC flow handed to HandleQUIC as a WireGuard
// device's would be: the app's UDP socket (app) talks to a socket
// connected to it (the flow's client side), which HandleQUIC reads.
type testQUICFlow struct {
	app  *net.UDPConn
	side *net.UDPConn
	done chan error
	end  func() // ends the flow (its context) and waits for HandleQUIC
}

// quicFlow starts HandleQUIC on a flow of device "phone" to dst.
func (e *testEnv) quicFlow(t *testing.T, dst netip.AddrPort) *testQUICFlow {
	t.Helper()
	app, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	side, err := net.DialUDP("udp", nil, app.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	origin, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &testQUICFlow{app: app, side: side, done: make(chan error, 1)}
	go func() {
		f.done <- e.srv.HandleQUIC(ctx, QUICArrival{Client: side, Origin: origin, Dst: dst, Source: inspect.SourceWireGuard, Device: "phone"})
	}()
	f.end = func() {
		cancel()
		if err := <-f.done; err != nil {
			t.Errorf("HandleQUIC: %v", err)
		}
		app.Close()
	}
	return f
}

// dial makes one QUIC connection attempt from the app, with quic-go's
// client, giving up after handshake.
func (f *testQUICFlow) dial(handshake time.Duration) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*handshake)
	defer cancel()
	return quic.Dial(ctx, f.app, f.side.LocalAddr(), &tls.Config{ServerName: "origin.test", NextProtos: []string{"h3"}},
		&quic.Config{HandshakeIdleTimeout: handshake})
}

// TestQUICConsoleLines: a QUIC connection's console line says QUIC, what
// its hello offered (and 0-RTT), and whether it was relayed (and what the
// origin answered) or blocked (and which TCP connection followed); the TCP
// connection that followed a blocked one says so. Each verdict is decided
// as the proxy decides it.
func TestQUICConsoleLines(t *testing.T) {
	psk := &inspect.ClientHelloRecord{Attempt: inspect.AttemptPSK, PreSharedKey: inspect.PSKFact{Offered: true, Identities: []inspect.PSKIdentity{{}}}}
	fresh := &inspect.ClientHelloRecord{Attempt: inspect.AttemptNone}
	quic := func(id string, ch *inspect.ClientHelloRecord, sh *inspect.ServerHelloRecord) *inspect.ConnRecord {
		return &inspect.ConnRecord{ID: id, Target: "192.0.2.7:443", Record: inspect.Record{Transport: inspect.TransportNameQUIC,
			ClientAddr: "10.73.0.2:51000", SNI: "h3.test", ClientHello: ch, ServerHello: sh, QUIC: &inspect.QUICFacts{VersionName: "v1"}}}
	}
	resumed := quic("c7", psk, &inspect.ServerHelloRecord{Version: 0x0304, Complete: true, Resumed: true})
	resumed.Passthrough, resumed.EarlyDataSent = passthroughQUIC, true
	full := quic("c8", fresh, &inspect.ServerHelloRecord{Version: 0x0304, Complete: true})
	full.Passthrough = passthroughQUIC
	unseen := quic("c9", fresh, nil)
	unseen.Passthrough = passthroughQUIC
	blocked := quic("c10", psk, nil)
	blocked.QUICFallback = &inspect.QUICFallback{Blocked: true, TCPConn: "c11", AfterMS: 312}
	alone := quic("c12", fresh, nil)
	alone.QUICFallback = &inspect.QUICFallback{Blocked: true}
	fallback := &inspect.ConnRecord{ID: "c11", Target: "192.0.2.7:443", AfterQUIC: "c10", Record: inspect.Record{
		ClientAddr: "10.73.0.2:51001", SNI: "h3.test", ClientHello: fresh}}

	for _, tt := range []struct {
		r    *inspect.ConnRecord
		code inspect.VerdictCode
		line string
	}{
		{resumed, inspect.CodePassthroughResumed,
			"c7 10.73.0.2 → h3.test:443  QUIC offered psk(1)+0-RTT  relayed untouched  origin resumed the client  = passthrough_resumed"},
		{full, inspect.CodePassthroughNotResumed,
			"c8 10.73.0.2 → h3.test:443  QUIC offered nothing  relayed untouched  origin did a full handshake  = passthrough_not_resumed"},
		{unseen, inspect.CodePassthroughUnknown,
			"c9 10.73.0.2 → h3.test:443  QUIC offered nothing  relayed untouched  origin's answer unseen  = passthrough_unknown"},
		{blocked, inspect.CodeQUICBlocked,
			"c10 10.73.0.2 → h3.test:443  QUIC offered psk(1)  blocked (--quic block)  fell back to TCP c11  = quic_blocked"},
		{alone, inspect.CodeQUICBlocked,
			"c12 10.73.0.2 → h3.test:443  QUIC offered nothing  blocked (--quic block)  no TCP fallback seen  = quic_blocked"},
		{fallback, inspect.CodeClientHandshakeFailed,
			"c11 10.73.0.2 → h3.test:443  offered nothing  client no handshake  upstream not dialled  after blocked QUIC c10  = client_handshake_failed"},
	} {
		tt.r.Verdict = decide(tt.r, verdictFacts{})
		if tt.r.Verdict.Code != tt.code {
			t.Errorf("%s: verdict %s (%s), want %s", tt.r.ID, tt.r.Verdict.Code, tt.r.Verdict.Text, tt.code)
		}
		if got := recordLine(tt.r, ""); got != tt.line {
			t.Errorf("%s: console line\n%s\nwant\n%s", tt.r.ID, got, tt.line)
		}
	}
	for _, tt := range []struct {
		r    *inspect.ConnRecord
		text string
	}{
		{blocked, "QUIC blocked (--quic block): the app falls back to TCP; it did: c11, 312ms after this connection's first packet; its QUIC hello offered psk(1)"},
		{alone, "QUIC blocked (--quic block): the app falls back to TCP; no TCP connection of this device to 192.0.2.7 port 443 followed within 5s; its QUIC hello offered nothing"},
	} {
		if tt.r.Verdict.Text != tt.text {
			t.Errorf("%s: verdict text\n%s\nwant\n%s", tt.r.ID, tt.r.Verdict.Text, tt.text)
		}
	}
}

// TestHandleQUICRefusesSelf: a QUIC flow to one of tlsresume's own
// listeners is refused, as a TCP connection to one is: an error, nothing
// relayed, no record; both sides are closed.
func TestHandleQUICRefusesSelf(t *testing.T) {
	// A listener of tlsresume's own the Server does not accept on itself,
	// as the WireGuard socket is.
	own, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	self := own.LocalAddr().(*net.UDPAddr).AddrPort()
	e := startProxy(t, tempDir(t), func(c *Config) { c.SelfAddrs = []netip.AddrPort{self} })
	client, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatal(err)
	}
	origin, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(self))
	if err != nil {
		t.Fatal(err)
	}
	err = e.srv.HandleQUIC(context.Background(), QUICArrival{Client: client, Origin: origin, Dst: self, Device: "phone"})
	if err == nil || !strings.Contains(err.Error(), "tlsresume itself") {
		t.Errorf("HandleQUIC to the proxy's own listener: %v, want a refusal", err)
	}
	if _, err := client.Write(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the client side is not closed: %v", err)
	}
	select {
	case r := <-e.got:
		t.Errorf("a record for a refused QUIC flow: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
}

// BenchmarkQUICFlowDatagram is what the proxy adds to each datagram a QUIC
// flow relays, the live reader included: the idle clock, the time, the
// lock, the reader's look at the datagram (here a 1-RTT one, as most of a
// connection's are), the counts.
func BenchmarkQUICFlowDatagram(b *testing.B) {
	ca, _, err := certs.Init(b.TempDir(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Issuer: iss})
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	f := s.newQUICFlow(QUICArrival{Client: c, Dst: netip.MustParseAddrPort("192.0.2.1:443")})
	defer f.close()
	oneRTT := make([]byte, 1200)
	oneRTT[0] = 0x41
	b.ReportAllocs()
	for b.Loop() {
		f.client(oneRTT)
	}
}
