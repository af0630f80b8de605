package wireguard

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// The benchmarks compare the tunnel with plain loopback TCP, so that what
// the user-space stack costs is a number:
//
//	go test -run '^$' -bench . -benchtime 2s ./proxy/wireguard/
//
// In the tunnel cases the device is a peer in this same process (the
// library's netstack TUN), so each connection goes through WireGuard twice
// (the peer encrypts, the server decrypts, and back) and through two
// user-space TCP stacks; a phone does its half on its own CPU. The held
// connection benchmark (held_test.go) runs its clients in another process
// to measure the server's memory alone.

// benchServer starts a server with one device and returns the device's
// peer; handle is the server's HandleTCP.
func benchServer(b *testing.B, handle func(net.Conn, netip.AddrPort, string)) *testPeer {
	st, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	d, _, err := st.Device("phone")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{ListenAddr: "127.0.0.1:0", ServerKey: st.ServerKey(), Devices: []Device{d}, HandleTCP: handle})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	p, _ := peerFor(b, st, srv, "phone")
	return p
}

// tlsTerminate is the proxy's first step on a connection: a TLS handshake
// as the server (with session tickets off, so each is a full handshake),
// then one byte, then wait for the client to close.
func tlsTerminate(cert tls.Certificate) func(net.Conn, netip.AddrPort, string) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true}
	return func(c net.Conn, _ netip.AddrPort, _ string) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.Write([]byte{1})
		io.Copy(io.Discard, tc)
	}
}

// BenchmarkTLSConns: a new connection and a full TLS 1.3 handshake per
// operation, through the tunnel and over loopback TCP.
func BenchmarkTLSConns(b *testing.B) {
	cert, roots := selfSigned(b, "origin.test")
	client := &tls.Config{ServerName: "origin.test", RootCAs: roots}
	one := func(b *testing.B, dial func() (net.Conn, error)) {
		c, err := dial()
		if err != nil {
			b.Fatal(err)
		}
		tc := tls.Client(c, client)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
		tc.Close()
	}
	b.Run("tunnel", func(b *testing.B) {
		p := benchServer(b, tlsTerminate(cert))
		b.ReportAllocs()
		for b.Loop() {
			one(b, func() (net.Conn, error) { return p.dial(farV4) })
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
	b.Run("loopback", func(b *testing.B) {
		addr := loopbackServer(b, tlsTerminate(cert))
		b.ReportAllocs()
		for b.Loop() {
			one(b, func() (net.Conn, error) { return net.Dial("tcp", addr) })
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
	})
}

// loopbackServer serves handle on a loopback TCP listener.
func loopbackServer(b *testing.B, handle func(net.Conn, netip.AddrPort, string)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c, netip.AddrPort{}, "")
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkBulk: 64 KiB writes on one connection, from the device
// (upload) and to it (download), through the tunnel and over loopback.
func BenchmarkBulk(b *testing.B) {
	const chunk = 64 << 10
	sink := func(c net.Conn, _ netip.AddrPort, _ string) { io.Copy(io.Discard, c) }
	source := func(c net.Conn, _ netip.AddrPort, _ string) {
		buf := make([]byte, chunk)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	run := func(b *testing.B, c net.Conn, upload bool) {
		defer c.Close()
		buf := make([]byte, chunk)
		b.SetBytes(chunk)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if upload {
				_, err = c.Write(buf)
			} else {
				_, err = io.ReadFull(c, buf)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, dir := range []struct {
		name   string
		upload bool
		handle func(net.Conn, netip.AddrPort, string)
	}{{"upload", true, sink}, {"download", false, source}} {
		b.Run("tunnel/"+dir.name, func(b *testing.B) {
			p := benchServer(b, dir.handle)
			c, err := p.dial(farV4)
			if err != nil {
				b.Fatal(err)
			}
			run(b, c, dir.upload)
		})
		b.Run("loopback/"+dir.name, func(b *testing.B) {
			c, err := net.Dial("tcp", loopbackServer(b, dir.handle))
			if err != nil {
				b.Fatal(err)
			}
			run(b, c, dir.upload)
		})
	}
}
