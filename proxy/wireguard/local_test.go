package wireguard

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestTunnelLoopbackDestinations: a device's SYN and datagram to a
// loopback address (127.0.0.1, ::1) reach AcceptTCP and HandleUDP like any
// other destination, so the proxy can refuse them with a reset and a
// record, or let them reach this machine when asked; gVisor's default
// drops them unseen as martians.
func TestTunnelLoopbackDestinations(t *testing.T) {
	syns := make(chan netip.AddrPort, 4)
	flows := make(chan netip.AddrPort, 4)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.AcceptTCP = func(_, dst netip.AddrPort, _ string) bool {
			syns <- dst
			return false // a reset, which the test peer drops as a martian: it is not waited for
		}
		c.HandleTCP = func(net.Conn, netip.AddrPort, string) { t.Error("a refused connection was handed over") }
		c.HandleUDP = func(fl *UDPFlow) { flows <- fl.Dst }
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")
	for _, dst := range []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("[::1]:9")} {
		go func() {
			if c, err := p.dial(dst); err == nil {
				c.Close()
			}
		}()
		select {
		case got := <-syns:
			if got != dst {
				t.Errorf("AcceptTCP saw %s, want %s", got, dst)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("a SYN to %s never reached AcceptTCP", dst)
		}
		c, err := p.net.DialUDPAddrPort(netip.AddrPort{}, dst)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.Close()
		select {
		case got := <-flows:
			if got != dst {
				t.Errorf("HandleUDP saw a flow to %s, want %s", got, dst)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("a datagram to %s never reached HandleUDP", dst)
		}
	}
}

// TestServeBoundConn: a server given a socket the caller bound serves on
// it (its address is Addr), and Close closes it even when the server never
// started.
func TestServeBoundConn(t *testing.T) {
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan tcpSeen, 1)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.ListenAddr = "" // the socket says where
		c.Conn = uc
		c.HandleTCP = recordTCP(seen, func(net.Conn, netip.AddrPort, string) {})
	})
	if got, want := f.srv.Addr().String(), uc.LocalAddr().String(); got != want {
		t.Errorf("Addr %s, want the bound socket's %s", got, want)
	}
	p, _ := peerFor(t, f.st, f.srv, "phone")
	c, err := p.dial(farV4)
	if err != nil {
		t.Fatalf("dialling through the server on the bound socket: %v", err)
	}
	c.Close()
	if s := <-seen; s.dst != farV4 {
		t.Errorf("handler saw %s, want %s", s.dst, farV4)
	}

	unused, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d, _, _ := f.st.Device("phone")
	srv, err := New(Config{Conn: unused, ServerKey: f.st.ServerKey(), Devices: []Device{d}, HandleTCP: func(net.Conn, netip.AddrPort, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := unused.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writing on the socket of a server closed before Start: %v, want it closed", err)
	}
}
