package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// datagramConn is a connection a caller accepted for one client, as a
// WireGuard UDP flow is: each Read returns one datagram from the client,
// each Write sends one to it.
type datagramConn struct {
	*net.UDPConn
	mu   sync.Mutex
	peer *net.UDPAddr
}

func (d *datagramConn) Read(b []byte) (int, error) {
	n, from, err := d.ReadFromUDP(b)
	d.mu.Lock()
	d.peer = from
	d.mu.Unlock()
	return n, err
}

func (d *datagramConn) Write(b []byte) (int, error) {
	return d.WriteToUDP(b, d.RemoteAddr().(*net.UDPAddr))
}

func (d *datagramConn) RemoteAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peer
}

// forwarderOn serves f on a loopback UDP socket, one query per ServeConn
// as a WireGuard DNS flow, and on a loopback TCP listener, a ServeConn per
// connection; it returns their addresses.
func forwarderOn(t *testing.T, f *Server) (udpAddr, tcpAddr string) {
	t.Helper()
	return forwarderPackets(t, f), forwarderStreams(t, f)
}

// forwarderPackets serves f on a loopback UDP socket, one query per
// ServeConn, and returns its address.
func forwarderPackets(t testing.TB, f *Server) string {
	t.Helper()
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { uc.Close(); <-done })
	go func() {
		defer close(done)
		dc := &datagramConn{UDPConn: uc}
		for !errors.Is(f.ServeConn(dc, "udp"), net.ErrClosed) {
		}
	}()
	return uc.LocalAddr().String()
}

// forwarderStreams serves f on a loopback TCP listener, a ServeConn per
// connection, and returns its address.
func forwarderStreams(t *testing.T, f *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.ServeConn(c, "tcp")
			}()
		}
	}()
	return ln.Addr().String()
}

func newTestForwarder(t *testing.T, up *upstream, cfg Config) *Server {
	t.Helper()
	cfg.Upstream = up.addr
	f, err := NewForwarder(cfg)
	if err != nil {
		t.Fatalf("NewForwarder: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestForwarder: a forwarder answers queries handed to it over UDP (one
// per connection) and TCP (several on one) with the upstream's answers,
// intercepting nothing, and remembers per client which name each answered
// address was for: the name asked, whatever CNAME led to the address, the
// latest lookup winning.
func TestForwarder(t *testing.T) {
	up := newUpstream(t)
	f := newTestForwarder(t, up, Config{})
	udpAddr, tcpAddr := forwarderOn(t, f)
	loop := netip.MustParseAddr("127.0.0.1")
	www4, www6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")

	if got := fromMsg(ask(t, udpAddr, "udp", "www.example.test.", dns.TypeA)); fmt.Sprint(got.answers) != "[A 192.0.2.10]" {
		t.Errorf("A over udp: %+v", got)
	}
	if name, ok := f.NameOf(loop, www4); name != "www.example.test" || !ok {
		t.Errorf("NameOf(%s) = %q, %v; want www.example.test", www4, name, ok)
	}
	// Two queries on one TCP connection.
	c, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).Dial(tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"www.example.test.", dns.TypeAAAA, "[AAAA 2001:db8::10]"},
		{"www.intercepted.test.", dns.TypeA, "[A 198.51.100.1]"}, // not intercepted: the upstream's
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).ExchangeWithConn(m, c)
		if err != nil {
			t.Fatalf("%s over tcp: %v", q.name, err)
		}
		if got := fromMsg(r); fmt.Sprint(got.answers) != q.want || got.aa != true {
			t.Errorf("%s over tcp: %+v, want %s from the upstream", q.name, got, q.want)
		}
	}
	if name, _ := f.NameOf(loop, www6); name != "www.example.test" {
		t.Errorf("NameOf(%s) = %q", www6, name)
	}
	ask(t, udpAddr, "udp", "alias.example.test.", dns.TypeA)
	for _, tt := range []struct {
		client, addr netip.Addr
		want         string
	}{
		{loop, www4, "alias.example.test"}, // asked last for this address
		{netip.MustParseAddr("::ffff:127.0.0.1"), www4, "alias.example.test"},
		{loop, netip.MustParseAddr("198.51.100.1"), "www.intercepted.test"},
		{netip.MustParseAddr("127.0.0.2"), www4, ""}, // another client asked nothing
		{loop, netip.MustParseAddr("192.0.2.99"), ""},
	} {
		if name, ok := f.NameOf(tt.client, tt.addr); name != tt.want || ok != (tt.want != "") {
			t.Errorf("NameOf(%s, %s) = %q, %v; want %q", tt.client, tt.addr, name, ok, tt.want)
		}
	}
	for _, a := range f.Answers() {
		if a.Intercepted {
			t.Errorf("answer %+v was intercepted", a)
		}
	}
	if err := f.Start(t.Context()); err == nil {
		t.Error("a forwarder started listening")
	}
}

// TestForwarderRefuses: a forwarder keeps New's server's rules: a client
// outside Allow gets nothing, a malformed query FORMERR, and a serve of an
// unknown network an error.
func TestForwarderRefuses(t *testing.T) {
	up := newUpstream(t)
	f := newTestForwarder(t, up, Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.73.0.0/24")}})
	udpAddr, _ := forwarderOn(t, f)
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion("www.example.test.", dns.TypeA)
	b, _ := m.Pack()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Errorf("a client outside Allow got %d bytes", n)
	}
	if r := f.Refusals(); r.NotAllowed != 1 {
		t.Errorf("refusals %+v, want one not allowed", r)
	}

	open := newTestForwarder(t, up, Config{})
	udpAddr, _ = forwarderOn(t, open)
	c2, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(append(b, 0, 0, 0)) // bytes after the last record
	c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, err := c2.Read(buf)
	var r dns.Msg
	if err != nil || r.Unpack(buf[:n]) != nil || r.Rcode != dns.RcodeFormatError || r.Id != m.Id {
		t.Errorf("malformed query: %d bytes (%v), rcode %d id %d; want FORMERR for id %d", n, err, r.Rcode, r.Id, m.Id)
	}
	if err := open.ServeConn(c2, "sctp"); err == nil || !strings.Contains(err.Error(), "sctp") {
		t.Errorf("ServeConn over sctp: %v", err)
	}
}

// TestForwarderConfig: a forwarder needs no answer address, and its
// upstream may be this machine's own resolver on port 53 (systemd-resolved
// at 127.0.0.53), which New's server on 0.0.0.0:53 would refuse as itself.
func TestForwarderConfig(t *testing.T) {
	f, err := NewForwarder(Config{Upstream: "127.0.0.53"})
	if err != nil {
		t.Fatalf("NewForwarder with a local resolver: %v", err)
	}
	f.Close()
	if f.Upstream() != "127.0.0.53:53" {
		t.Errorf("upstream %s", f.Upstream())
	}
	if _, err := NewForwarder(Config{Upstream: "not an address"}); err == nil {
		t.Error("NewForwarder took an upstream that is not an address")
	}
}

// TestNamesBounded: a client's memory keeps its latest namesPerClient
// addresses, and at most maxNameClients clients are remembered, the one
// that learned least recently forgotten first.
func TestNamesBounded(t *testing.T) {
	n := newNames()
	clock := tlstest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	client := netip.MustParseAddr("10.73.0.2")
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}) }
	for i := range namesPerClient + 10 {
		n.learn(client, fmt.Sprintf("n%d.test", i), []dns.RR{&dns.A{A: addr(i).AsSlice()}}, clock.Now())
	}
	if _, ok := n.lookup(client, addr(9)); ok {
		t.Error("the 10th address is still remembered past the bound")
	}
	if name, _ := n.lookup(client, addr(10)); name != "n10.test" {
		t.Errorf("the 11th address: %q", name)
	}
	if name, _ := n.lookup(client, addr(namesPerClient+9)); name != fmt.Sprintf("n%d.test", namesPerClient+9) {
		t.Errorf("the last address: %q", name)
	}
	for i := range maxNameClients + 1 {
		clock.Advance(time.Second)
		c := netip.AddrFrom4([4]byte{10, 74, byte(i >> 8), byte(i)})
		n.learn(c, "x.test", []dns.RR{&dns.AAAA{AAAA: net.ParseIP("2001:db8::1")}}, clock.Now())
	}
	if len(n.clients) != maxNameClients {
		t.Errorf("%d clients remembered, want %d", len(n.clients), maxNameClients)
	}
	if _, ok := n.lookup(client, addr(10)); ok {
		t.Error("the client that learned least recently was not the one forgotten")
	}
}

// FuzzForwarder: whatever a device sends to the tunnel's DNS address, a
// forwarder answers as New's server does (FuzzHandle): ServeConn keeps its
// rules.
func FuzzForwarder(f *testing.F) {
	up := newUpstream(f)
	fw, err := NewForwarder(Config{Upstream: up.addr, RateLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fw.Close() })
	for _, tc := range malformed(f) {
		f.Add(tc.pkt)
	}
	f.Add(packQuery(f, 0x1234, "www.example.test.", dns.TypeAAAA))
	f.Add(packQuery(f, 0x1234, bigTXT, dns.TypeTXT))
	udpAddr := forwarderPackets(f, fw)
	f.Fuzz(func(t *testing.T, pkt []byte) { answersAsItShould(t, udpAddr, pkt, "www.example.test.") })
}
