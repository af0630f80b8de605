package wireguard

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// TestReconnectAfterServerClose: a connection the server closes first
// stays in the server's TIME_WAIT, and gVisor drops a new SYN on its
// address and ports (it hands such a SYN only to a listening endpoint,
// connect.go, and the server has none: a forwarder); a device reusing the
// port, as one picking ports at random sometimes does, must still
// connect within seconds, not wait out a minute's TIME_WAIT.
func TestReconnectAfterServerClose(t *testing.T) {
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := st.Device("phone")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{ListenAddr: "127.0.0.1:0", ServerKey: st.ServerKey(), Devices: []Device{d},
		HandleTCP: func(c net.Conn, _ netip.AddrPort, _ string) { c.Write([]byte("bye")) }}) // then closed: the server's FIN first
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	text, err := WGQuick(d, st.ServerKey(), "192.0.2.1:51820")
	if err != nil {
		t.Fatal(err)
	}
	p, err := wgpeer.Start(text, srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const port = 40404
	for i := range 2 {
		c, err := dialFrom(p, port)
		if err != nil {
			t.Fatalf("connection %d from port %d: %v", i+1, port, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if b, err := io.ReadAll(c); string(b) != "bye" || err != nil {
			t.Fatalf("connection %d: read %q, %v", i+1, b, err)
		}
		c.Close() // after the server's FIN: the device keeps no TIME_WAIT
	}
}

// dialFrom connects from port within 4 seconds, once the device's own
// side of the last connection from it (LAST_ACK) has let the port go.
func dialFrom(p *wgpeer.Peer, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	for {
		c, err := p.DialTCPFrom(ctx, port, farV4)
		if err == nil || !strings.Contains(err.Error(), "port is in use") || ctx.Err() != nil {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
