package wireguard

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Destinations a device names inside the tunnel. None is dialled: the
// tests' handlers relay to loopback whatever the destination. 198.18.0.0/15
// is reserved for benchmarking (RFC 2544), 2001:db8::/32 for documentation
// (RFC 3849).
var (
	farV4 = netip.MustParseAddrPort("198.18.0.10:443")
	farV6 = netip.MustParseAddrPort("[2001:db8::10]:443")
)

// tcpSeen is what a HandleTCP saw of one connection.
type tcpSeen struct {
	dst            netip.AddrPort
	device         string
	local, remote  netip.AddrPort
	handlerReturns chan struct{}
}

// fixture is a Store in a temporary CA directory and a Server on loopback
// that knows the named devices.
type fixture struct {
	st  *Store
	srv *Server
}

func newFixture(t *testing.T, names []string, mod func(*Config)) *fixture {
	t.Helper()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var devs []Device
	for _, n := range names {
		d, _, err := st.Device(n)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	cfg := Config{ListenAddr: "127.0.0.1:0", ServerKey: st.ServerKey(), Devices: devs}
	mod(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &fixture{st: st, srv: srv}
}

// recordTCP wraps a HandleTCP so that every connection is reported on seen.
func recordTCP(seen chan<- tcpSeen, next func(net.Conn, netip.AddrPort, string)) func(net.Conn, netip.AddrPort, string) {
	return func(c net.Conn, dst netip.AddrPort, device string) {
		s := tcpSeen{dst: dst, device: device,
			local:  c.LocalAddr().(*net.TCPAddr).AddrPort(),
			remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
		seen <- s
		next(c, dst, device)
	}
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TestTunnelTLSResumes: a device's TLS connections through the tunnel, to
// a far IPv4 address, a far IPv6 address and the server's own address,
// reach a loopback crypto/tls origin through HandleTCP, which is told the
// original destination and the device; the second connection resumes.
func TestTunnelTLSResumes(t *testing.T) {
	origin := newTLSOrigin(t)
	seen := make(chan tcpSeen, 8)
	f := newFixture(t, []string{"phone"}, func(c *Config) { c.HandleTCP = recordTCP(seen, relayTo(origin.addr())) })
	p, d := peerFor(t, f.st, f.srv, "phone")
	s4, s6 := ServerAddrs()
	for _, tt := range []struct {
		name string
		dst  netip.AddrPort
		from netip.Addr
	}{
		{"ipv4", farV4, d.IPv4},
		{"ipv6", farV6, d.IPv6},
		{"server-ipv4", netip.AddrPortFrom(s4, 443), d.IPv4},
		{"server-ipv6", netip.AddrPortFrom(s6, 8443), d.IPv6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				c, err := p.dial(tt.dst)
				if err != nil {
					t.Fatalf("connection %d: dialling %s through the tunnel: %v", i+1, tt.dst, err)
				}
				tc := tls.Client(c, &tls.Config{ServerName: "origin.test", RootCAs: origin.roots, ClientSessionCache: cache})
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				// Reading the origin's line also reads the TLS 1.3 ticket
				// sent before it (RFC 8446 §4.6.1).
				line, err := bufio.NewReader(tc).ReadString('\n')
				if err != nil {
					t.Fatalf("connection %d: %v", i+1, err)
				}
				want := i == 1
				if got := tc.ConnectionState().DidResume; got != want || line != fmt.Sprintf("resumed=%v\n", want) {
					t.Errorf("connection %d: client DidResume %v, origin said %q; want resumed=%v", i+1, got, line, want)
				}
				tc.Close()
				s := <-seen
				if s.dst != tt.dst || s.device != "phone" || unmapped(s.local) != tt.dst || s.remote.Addr().Unmap() != tt.from {
					t.Errorf("connection %d: handler saw dst %s device %q local %s remote %s; want dst %s device phone local %s remote %s",
						i+1, s.dst, s.device, s.local, s.remote, tt.dst, tt.dst, tt.from)
				}
			}
		})
	}
	st, err := f.srv.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Name != "phone" || st[0].TCPConns != 8 || st[0].LastHandshake.IsZero() || st[0].RxBytes == 0 || st[0].TxBytes == 0 || st[0].Endpoint == "" {
		t.Errorf("stats %+v: want phone with 8 connections, a handshake, bytes both ways and an endpoint", st)
	}
}

// TestTunnelTwoDevices: two devices connect at once; each connection is
// delivered with its own device's name, told apart by the source address
// WireGuard vouches for.
func TestTunnelTwoDevices(t *testing.T) {
	origin := newTLSOrigin(t)
	seen := make(chan tcpSeen, 8)
	f := newFixture(t, []string{"phone", "tablet"}, func(c *Config) { c.HandleTCP = recordTCP(seen, relayTo(origin.addr())) })
	peers := map[string]*testPeer{}
	devs := map[string]Device{}
	for _, name := range []string{"phone", "tablet"} {
		peers[name], devs[name] = peerFor(t, f.st, f.srv, name)
	}
	for _, name := range []string{"tablet", "phone", "tablet"} {
		p, d := peers[name], devs[name]
		c, err := p.dial(farV4)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Close()
		if s := <-seen; s.device != name || s.remote.Addr().Unmap() != d.IPv4 {
			t.Errorf("connection from %s (%s): handler saw device %q from %s", name, d.IPv4, s.device, s.remote)
		}
	}
}

// TestTunnelRefusals: a connection the handler aborts, one AcceptTCP
// refuses and one beyond MaxTCPConns each get a reset, which the device
// sees as a refused or reset connection, not as an empty answer.
func TestTunnelRefusals(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.MaxTCPConns = 1
		c.AcceptTCP = func(_, dst netip.AddrPort, _ string) bool { return dst.Port() != 25 }
		c.HandleTCP = func(conn net.Conn, dst netip.AddrPort, _ string) {
			switch dst.Port() {
			case 1: // the destination "cannot be reached"
				conn.(*TCPConn).Abort()
			case 2:
				<-hold // holds the only slot
			}
		}
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")

	c, err := p.dial(netip.AddrPortFrom(farV4.Addr(), 1))
	if err != nil {
		t.Fatalf("dialling a destination the handler aborts: %v (the handshake should complete first)", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) && !isReset(err) {
		t.Errorf("read after Abort: %v, want a connection reset", err)
	}
	c.Close()

	if c, err := p.dial(netip.AddrPortFrom(farV4.Addr(), 25)); err == nil || !isRefused(err) {
		t.Errorf("dial refused by AcceptTCP: %v, want connection refused", err)
		if c != nil {
			c.Close()
		}
	}

	held, err := p.dial(netip.AddrPortFrom(farV4.Addr(), 2))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitFor(t, func() bool { st, _ := f.srv.Stats(); return st[0].ActiveTCP == 1 })
	if c, err := p.dial(farV4); err == nil || !isRefused(err) {
		t.Errorf("dial beyond MaxTCPConns: %v, want connection refused", err)
		if c != nil {
			c.Close()
		}
	}
	st, _ := f.srv.Stats()
	if st[0].RefusedTCP != 2 {
		t.Errorf("refused_tcp %d, want 2", st[0].RefusedTCP)
	}
}

// isRefused and isReset recognise the netstack's errors, which are not
// syscall errnos but say the same in words.
func isRefused(err error) bool {
	return err != nil && (errors.Is(err, syscall.ECONNREFUSED) || containsAny(err.Error(), "connection was refused", "connection refused"))
}

func isReset(err error) bool {
	return err != nil && containsAny(err.Error(), "connection reset", "reset by peer")
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestTunnelCloseWaits: Close resets the connections handlers hold and
// returns only once every handler has returned.
func TestTunnelCloseWaits(t *testing.T) {
	returned := make(chan error, 1)
	entered := make(chan struct{})
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.HandleTCP = func(conn net.Conn, _ netip.AddrPort, _ string) {
			close(entered)
			_, err := io.Copy(io.Discard, conn) // blocks until Close
			time.Sleep(50 * time.Millisecond)   // a handler still finishing
			returned <- err
		}
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")
	c, err := p.dial(farV4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-entered
	f.srv.Close()
	select {
	case <-returned:
	default:
		t.Fatal("Close returned before the handler did")
	}
	if f.srv.Addr() != nil {
		t.Errorf("Addr %v after Close, want nil", f.srv.Addr())
	}
}

// TestTunnelCloseDuringHandshake: Close does not wait out a TCP handshake
// whose device has gone (the SYN-ACK retransmissions would take a minute).
func TestTunnelCloseDuringHandshake(t *testing.T) {
	synSeen := make(chan struct{})
	peerGone := make(chan struct{})
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.AcceptTCP = func(_, _ netip.AddrPort, _ string) bool {
			close(synSeen)
			<-peerGone // the SYN-ACK will find no one
			return true
		}
		c.HandleTCP = func(net.Conn, netip.AddrPort, string) { t.Error("a connection was handed over") }
	})
	p, _ := peerFor(t, f.st, f.srv, "phone")
	go p.dial(farV4)
	<-synSeen
	p.dev.Close()
	close(peerGone)
	time.Sleep(100 * time.Millisecond) // the forwarder is now in CreateEndpoint
	done := make(chan struct{})
	go func() {
		f.srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting after 10s for a handshake with a device that is gone")
	}
}
