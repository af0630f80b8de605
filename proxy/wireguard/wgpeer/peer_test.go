package wgpeer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// startServer starts tlsresume's WireGuard server on loopback with one
// device, whose connections are relayed to this machine's address and
// port they name (as --wireguard-local lets them), and returns the
// device's wg-quick text and the server's address.
func startServer(t *testing.T) (text, addr string) {
	t.Helper()
	st, err := wireguard.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := st.Device("phone")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := wireguard.New(wireguard.Config{ListenAddr: "127.0.0.1:0", ServerKey: st.ServerKey(), Devices: []wireguard.Device{d},
		HandleTCP: func(c net.Conn, dst netip.AddrPort, _ string) {
			up, err := net.DialTimeout("tcp", dst.String(), 5*time.Second)
			if err != nil {
				c.(*wireguard.TCPConn).Abort()
				return
			}
			defer up.Close()
			go func() {
				io.Copy(up, c)
				up.(*net.TCPConn).CloseWrite() // the echo server then closes
			}()
			io.Copy(c, up)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	text, err = wireguard.WGQuick(d, st.ServerKey(), "192.0.2.1:51820") // a LAN address, never dialled
	if err != nil {
		t.Fatal(err)
	}
	return text, srv.Addr().String()
}

// echoServer answers each line on a loopback listener with "echo: " and
// the line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo: %s\n", sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestPeerReachesLoopback: a peer started from the server's wg-quick text
// reaches a loopback origin through the tunnel (an answer from 127.0.0.1,
// which wireguard-go's own netstack would drop), with DialContext as an
// http.Transport calls it; names and other networks are refused.
func TestPeerReachesLoopback(t *testing.T) {
	text, addr := startServer(t)
	p, err := Start(text, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Config().Address[0]; got != netip.MustParsePrefix("10.73.0.2/32") {
		t.Errorf("Config().Address[0] = %s", got)
	}
	echo := echoServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 2 {
		c, err := p.DialContext(ctx, "tcp", echo)
		if err != nil {
			t.Fatalf("dial %d through the tunnel: %v", i+1, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "hello %d\n", i)
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if want := fmt.Sprintf("echo: hello %d\n", i); err != nil || line != want {
			t.Errorf("connection %d: read %q, %v; want %q", i+1, line, err, want)
		}
	}
	for _, bad := range []struct{ network, address string }{{"tcp", "localhost:80"}, {"unix", echo}} {
		if c, err := p.DialContext(ctx, bad.network, bad.address); err == nil {
			c.Close()
			t.Errorf("DialContext(%q, %q) succeeded", bad.network, bad.address)
		}
	}
	// Both connections were closed by the peer first, so it kept them in
	// TIME_WAIT: for a second, not gVisor's default minute.
	for deadline := time.Now().Add(5 * time.Second); len(p.stack.RegisteredEndpoints()) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d endpoints still registered 5 s after their connections closed", len(p.stack.RegisteredEndpoints()))
		}
	}
	p.Close()
	if c, err := p.DialContext(ctx, "tcp", echo); err == nil {
		c.Close()
		t.Error("a closed peer dialled")
	}
}

// TestStartRefuses: a text that is no configuration, or an endpoint that
// is no ip:port, fails Start.
func TestStartRefuses(t *testing.T) {
	if _, err := Start("[Interface]\nPrivateKey = x\n", "127.0.0.1:1"); err == nil {
		t.Error("started from a bad text")
	}
	if _, err := Start(wgQuickText, "laptop:51820"); err == nil {
		t.Error("started with a name for an endpoint")
	}
}
