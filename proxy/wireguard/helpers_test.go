package wireguard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// parseWGQuick reads a wg-quick text as wgpeer, a WireGuard app in this
// process, does: it refuses unknown keys, so a key WGQuick misspells fails
// here as it would in an app.
func parseWGQuick(t testing.TB, text string) wgpeer.Config {
	t.Helper()
	c, err := wgpeer.ParseConfig(text)
	if err != nil {
		t.Fatalf("wg-quick: %v", err)
	}
	return c
}

// testPeer is a WireGuard client in this process, made with the same
// library as a phone's app: device.NewDevice over netstack.CreateNetTUN,
// configured from the wg-quick text WGQuick rendered.
type testPeer struct {
	dev  *device.Device
	net  *netstack.Net
	conf wgpeer.Config
	rx   atomic.Int64 // datagrams its socket received
}

// newTestPeer starts a peer for the configuration text, reaching the server
// at endpoint (loopback) rather than the LAN address the text names.
func newTestPeer(t testing.TB, text, endpoint string) *testPeer {
	t.Helper()
	p, err := startPeer(text, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.dev.Close)
	return p
}

// startPeer is newTestPeer for a process without a testing.TB (the held
// connections' child); the caller closes p.dev.
func startPeer(text, endpoint string) (*testPeer, error) {
	conf, err := wgpeer.ParseConfig(text)
	if err != nil {
		return nil, err
	}
	p := &testPeer{conf: conf}
	addrs := make([]netip.Addr, len(p.conf.Address))
	for i, a := range p.conf.Address {
		addrs[i] = a.Addr()
	}
	tdev, tnet, err := netstack.CreateNetTUN(addrs, p.conf.DNS, 1420)
	if err != nil {
		return nil, err
	}
	p.net = tnet
	p.dev = device.NewDevice(tdev, &countingBind{Bind: conn.NewDefaultBind(), rx: &p.rx}, device.NewLogger(device.LogLevelSilent, ""))
	if err := p.dev.IpcSet(p.conf.UAPI(endpoint)); err != nil {
		p.dev.Close()
		return nil, err
	}
	if err := p.dev.Up(); err != nil {
		p.dev.Close()
		return nil, err
	}
	return p, nil
}

// peerFor creates (or loads) device name in st and starts its peer against s.
func peerFor(t testing.TB, st *Store, s *Server, name string) (*testPeer, Device) {
	t.Helper()
	d, _, err := st.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	text, err := WGQuick(d, st.ServerKey(), "192.0.2.1:51820") // the LAN address a phone would use; never dialled
	if err != nil {
		t.Fatal(err)
	}
	return newTestPeer(t, text, s.Addr().String()), d
}

// countingBind counts the datagrams a peer receives, to show that the
// server answered nothing.
type countingBind struct {
	conn.Bind
	rx *atomic.Int64
}

func (b *countingBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			b.rx.Add(int64(n))
			return n, err
		}
	}
	return fns, p, err
}

// dial dials addr over TCP from the peer through the tunnel, bounded by 5
// seconds.
func (p *testPeer) dial(addr netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.net.DialContextTCPAddrPort(ctx, addr)
}

// poolOf trusts the certificates in a PEM text.
func poolOf(pemText string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText)) {
		return nil, fmt.Errorf("no certificate in the PEM text")
	}
	return pool, nil
}

// TestMain makes this test binary, when heldEnv is set, the child process
// of BenchmarkHeldConn that holds connections; otherwise it runs the tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv(heldEnv); spec != "" {
		if err := runHeldClients(spec); err != nil {
			fmt.Fprintln(os.Stderr, "held clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tlsOrigin is a crypto/tls server on loopback that issues session tickets
// and tells each client whether it resumed.
type tlsOrigin struct {
	ln    net.Listener
	roots *x509.CertPool
	conns atomic.Int64
}

func newTLSOrigin(t testing.TB) *tlsOrigin {
	t.Helper()
	cert, roots := selfSigned(t, "origin.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	o := &tlsOrigin{ln: ln, roots: roots}
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
			o.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				fmt.Fprintf(tc, "resumed=%v\n", tc.ConnectionState().DidResume)
				io.Copy(io.Discard, tc) // until the client closes
			}()
		}
	}()
	return o
}

func (o *tlsOrigin) addr() string { return o.ln.Addr().String() }

// selfSigned returns a certificate for name and a pool that trusts it.
func selfSigned(t testing.TB, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// relayTo is a HandleTCP that dials origin (on loopback) whatever the
// destination and copies both ways, as the proxy's passthrough would.
func relayTo(origin string) func(net.Conn, netip.AddrPort, string) {
	return func(c net.Conn, _ netip.AddrPort, _ string) {
		up, err := net.DialTimeout("tcp", origin, 5*time.Second)
		if err != nil {
			c.(*TCPConn).Abort()
			return
		}
		defer up.Close()
		done := make(chan struct{})
		go func() {
			io.Copy(up, c)
			up.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, up)
		c.(*TCPConn).CloseWrite()
		<-done
	}
}
