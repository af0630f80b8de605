package wireguard

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpEcho is a loopback UDP server that sends every datagram back.
func udpEcho(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr)
}

// relayUDP is a HandleUDP that relays a flow to origin (loopback) until
// the flow ends, and reports the flow and how it ended on flows.
func relayUDP(origin *net.UDPAddr, flows chan<- flowEnd) func(*UDPFlow) {
	return func(f *UDPFlow) {
		up, err := net.DialUDP("udp", nil, origin)
		if err != nil {
			flows <- flowEnd{f, err}
			return
		}
		defer up.Close()
		go func() {
			buf := make([]byte, 2048)
			for {
				n, err := up.Read(buf)
				if err != nil {
					return
				}
				f.Write(buf[:n])
			}
		}()
		buf := make([]byte, 2048)
		for {
			n, err := f.Read(buf)
			if err != nil {
				flows <- flowEnd{f, err}
				return
			}
			up.Write(buf[:n])
		}
	}
}

type flowEnd struct {
	f   *UDPFlow
	err error
}

// TestTunnelUDP: datagrams from a device to a far IPv4 address, a far IPv6
// address and the tunnel's DNS address come out of one flow each, and the
// answers reach the device from the address it sent to. A flow that
// carries nothing for the idle timeout ends with ErrIdle, and the next
// datagram starts a new one.
func TestTunnelUDP(t *testing.T) {
	echo := udpEcho(t)
	ends := make(chan flowEnd, 8)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.HandleUDP = relayUDP(echo, ends)
		c.UDPIdleTimeout = 300 * time.Millisecond
	})
	p, d := peerFor(t, f.st, f.srv, "phone")
	s4, _ := ServerAddrs()
	for _, tt := range []struct {
		name string
		dst  netip.AddrPort
		from netip.Addr
	}{
		{"ipv4", netip.MustParseAddrPort("198.18.0.10:443"), d.IPv4},
		{"ipv6", netip.MustParseAddrPort("[2001:db8::10]:443"), d.IPv6},
		{"dns", netip.AddrPortFrom(s4, 53), d.IPv4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := p.net.DialUDPAddrPort(netip.AddrPort{}, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i, msg := range []string{"one", "two"} {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 64)
				n, from, err := c.ReadFrom(buf)
				if err != nil || string(buf[:n]) != msg || unmapped(from.(*net.UDPAddr).AddrPort()) != tt.dst {
					t.Fatalf("datagram %d: got %q from %v (%v), want %q from %s", i+1, buf[:n], from, err, msg, tt.dst)
				}
			}
			end := <-ends
			src := unmapped(c.LocalAddr().(*net.UDPAddr).AddrPort())
			if !errors.Is(end.err, ErrIdle) || end.f.Dst != tt.dst || end.f.Src.Addr() != tt.from || end.f.Src.Port() != src.Port() || end.f.Device != "phone" {
				t.Errorf("flow %s→%s of %q ended with %v; want %s:%d→%s of phone, ended by ErrIdle", end.f.Src, end.f.Dst, end.f.Device, end.err, tt.from, src.Port(), tt.dst)
			}
			// A datagram after the flow ended starts a new one.
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte("three"))
			if n, err := c.Read(make([]byte, 64)); err != nil || n != 5 {
				t.Errorf("after the idle timeout: %d bytes, %v; want the echo", n, err)
			}
			<-ends
		})
	}
	st, _ := f.srv.Stats()
	if st[0].UDPFlows != 6 || st[0].ActiveUDP != 0 {
		t.Errorf("udp_flows %d active %d, want 6 and 0", st[0].UDPFlows, st[0].ActiveUDP)
	}
}

// TestTunnelUDPLimit: beyond MaxUDPFlows a datagram is dropped, unanswered.
func TestTunnelUDPLimit(t *testing.T) {
	echo := udpEcho(t)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.HandleUDP = relayUDP(echo, make(chan flowEnd, 8))
		c.MaxUDPFlows = 1
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")
	var conns []net.Conn
	for i := range 2 {
		c, err := p.net.DialUDPAddrPort(netip.AddrPort{}, farV4)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(time.Duration(5-4*i) * time.Second)) // the second is expected to time out
		c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 8))
		if (err == nil) != (i == 0) {
			t.Errorf("flow %d: read error %v; want an echo for the first only", i+1, err)
		}
	}
	if st, _ := f.srv.Stats(); st[0].DroppedUDPFlows < 1 || st[0].ActiveUDP != 1 {
		t.Errorf("dropped %d active %d; want at least 1 dropped and 1 active", st[0].DroppedUDPFlows, st[0].ActiveUDP)
	}
}

// TestTunnelICMP: a ping to the server's own address is answered by the
// netstack, over IPv4 and IPv6; a ping to any other address is dropped
// (never answered as if from there, never sent on), and no handler sees it.
func TestTunnelICMP(t *testing.T) {
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.HandleTCP = func(net.Conn, netip.AddrPort, string) { t.Error("HandleTCP called for a ping") }
		c.HandleUDP = func(*UDPFlow) { t.Error("HandleUDP called for a ping") }
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")
	s4, s6 := ServerAddrs()
	for _, tt := range []struct {
		name     string
		dst      netip.Addr
		answered bool
	}{
		{"server-ipv4", s4, true},
		{"server-ipv6", s6, true},
		{"far-ipv4", farV4.Addr(), false},
		{"far-ipv6", farV6.Addr(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ping(t, p, tt.dst)
			// A ping that should be answered gets two more tries, so that
			// a slow moment (the race detector, a loaded machine) is not
			// taken for a drop.
			for i := 0; i < 2 && tt.answered && !got; i++ {
				got = ping(t, p, tt.dst)
			}
			if got != tt.answered {
				t.Errorf("ping %s answered=%v, want %v", tt.dst, got, tt.answered)
			}
		})
	}
}

// ping sends one echo request to dst from the peer and reports whether an
// echo reply came back within a second.
func ping(t *testing.T, p *testPeer, dst netip.Addr) bool {
	t.Helper()
	c, err := p.net.DialPingAddr(netip.Addr{}, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var typ icmp.Type = ipv4.ICMPTypeEcho
	proto := 1
	if dst.Is6() {
		typ, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	msg, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 7, Seq: 1, Data: []byte("tlsresume")}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) || (err != nil && containsAny(err.Error(), "timeout")) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	reply, err := icmp.ParseMessage(proto, buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return reply.Type == ipv4.ICMPTypeEchoReply || reply.Type == ipv6.ICMPTypeEchoReply
}

// TestTunnelUnknownKey: a client whose key the server does not know gets
// nothing back, not a single datagram, and reaches no handler.
func TestTunnelUnknownKey(t *testing.T) {
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.HandleTCP = func(net.Conn, netip.AddrPort, string) { t.Error("HandleTCP called for an unknown key") }
	})
	stranger, err := NewDevice("stranger", 9)
	if err != nil {
		t.Fatal(err)
	}
	text, err := WGQuick(stranger, f.st.ServerKey(), "192.0.2.1:51820")
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPeer(t, text, f.srv.Addr().String())
	c, err := p.net.DialUDPAddrPort(netip.AddrPort{}, farV4) // UDP: sending does not wait for an answer
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello?"))
	if c2, err := p.dial(farV4); err == nil {
		c2.Close()
		t.Fatal("an unknown key connected")
	}
	if n := p.rx.Load(); n != 0 {
		t.Errorf("the unknown client received %d datagrams, want none", n)
	}
	if st, _ := f.srv.Stats(); st[0].Endpoint != "" || !st[0].LastHandshake.IsZero() {
		t.Errorf("stats %+v after an unknown key tried", st)
	}
}

// TestTunnelAddDevice: a device added while the server runs can connect.
func TestTunnelAddDevice(t *testing.T) {
	origin := newTLSOrigin(t)
	seen := make(chan tcpSeen, 2)
	f := newFixture(t, []string{"phone"}, func(c *Config) { c.HandleTCP = recordTCP(seen, relayTo(origin.addr())) })
	d, _, err := f.st.Device("tablet")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddDevice(d); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.AddDevice(d); err == nil {
		t.Error("adding the same device twice succeeded")
	}
	p, _ := peerFor(t, f.st, f.srv, "tablet")
	c, err := p.dial(farV4)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if s := <-seen; s.device != "tablet" {
		t.Errorf("device %q, want tablet", s.device)
	}
}
