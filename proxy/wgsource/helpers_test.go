package wgsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// env is a proxy on loopback with the WireGuard source in front of it, a
// device "phone" whose peer runs in this process, and the proxy's records.
type env struct {
	srv     *proxy.Server
	src     *Source
	peer    *tlstest.WGPeer
	ca      *x509.CertPool // trusts tlsresume's CA
	self    netip.AddrPort // the proxy's own CONNECT listener
	records chan *inspect.ConnRecord
}

// originCert names origin.test and both loopback addresses; originPool
// trusts it (the proxy's upstream roots).
var originCert = mustCert(tlstest.CertOptions{Names: []string{"origin.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}})

func mustCert(o tlstest.CertOptions) tlstest.Cert {
	c, err := tlstest.MakeCert(o)
	if err != nil {
		panic(err)
	}
	return c
}

// newEnv starts it all; mod may change the source's config (Local, QUIC).
// The WireGuard socket is bound first and named among the proxy's own
// addresses, as the CLI does.
func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvProxy(t, mod, nil)
}

// newEnvProxy is newEnv whose pmod may change the proxy's config too
// (QUIC, QUICIdleTimeout).
func newEnvProxy(t *testing.T, mod func(*Config), pmod func(*proxy.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	ca, _, err := certs.Init(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	wgAddr := uc.LocalAddr().(*net.UDPAddr).AddrPort()
	pcfg := proxy.Config{Issuer: iss, CA: ca, UpstreamRoots: originCert.Pool(), SelfAddrs: []netip.AddrPort{wgAddr}}
	if pmod != nil {
		pmod(&pcfg)
	}
	srv, err := proxy.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, ca: x509.NewCertPool(), records: make(chan *inspect.ConnRecord, 256)}
	e.ca.AddCert(ca.Cert)
	events := srv.Subscribe(context.Background(), 1024)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for ev := range events {
			if ev.Kind == inspect.EventClose {
				e.records <- ev.Record
			}
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.self = netip.MustParseAddrPort(ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	st, err := wireguard.OpenStore(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Conn: uc, Store: st, DNSUpstream: tlstest.StartDNS(t, testZone)}
	if mod != nil {
		mod(&cfg)
	}
	if e.src, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.src.Start(t.Context(), srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		e.src.Close()
		<-served
		<-followed
	})
	text, err := e.src.DeviceConfig("phone")
	if err != nil {
		t.Fatal(err)
	}
	e.peer = tlstest.StartWGPeer(t, text, e.src.Addr().String())
	return e
}

// next waits for the next record.
func (e *env) next(t *testing.T) *inspect.ConnRecord {
	t.Helper()
	select {
	case r := <-e.records:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no record within 10s")
		return nil
	}
}

// dial connects from the device to dst through the tunnel, within 5s.
func (e *env) dial(dst netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.peer.DialTCP(ctx, dst)
}

// tlsOrigin is a crypto/tls server on 127.0.0.1 and ::1 (one port each)
// that issues tickets and writes "resumed=BOOL\n" on each connection.
type tlsOrigin struct{ v4, v6 netip.AddrPort }

func startTLSOrigin(t *testing.T) tlsOrigin {
	t.Helper()
	var o tlsOrigin
	var wg sync.WaitGroup
	var lns []net.Listener
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	})
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		ln, err := tls.Listen("tcp", host+":0", &tls.Config{Certificates: []tls.Certificate{originCert.TLS}})
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ap := netip.MustParseAddrPort(ln.Addr().String())
		if ap.Addr().Is4() {
			o.v4 = ap
		} else {
			o.v6 = ap
		}
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
					c.SetDeadline(time.Now().Add(10 * time.Second))
					tc := c.(*tls.Conn)
					if tc.Handshake() != nil {
						return
					}
					fmt.Fprintf(tc, "resumed=%v\n", tc.ConnectionState().DidResume)
					io.Copy(io.Discard, tc)
				}()
			}
		}()
	}
	return o
}

// udpEcho sends every datagram back, on 127.0.0.1 and ::1.
func udpEcho(t *testing.T) (v4, v6 netip.AddrPort) {
	t.Helper()
	for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
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
		if ap := c.LocalAddr().(*net.UDPAddr).AddrPort(); ip.To4() != nil {
			v4 = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		} else {
			v6 = ap
		}
	}
	return v4, v6
}

// testZone is what the test resolver knows: origin.test on loopback.
var testZone = map[string][]netip.Addr{
	"origin.test": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
}

// isReset recognises the netstack's words for a reset.
func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "reset by peer"))
}
