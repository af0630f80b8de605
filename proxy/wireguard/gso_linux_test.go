package wireguard

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// groReceiver is a loopback UDP socket that asks for UDP GRO, as
// wireguard-go's bind does: a run the kernel segmented (GSO) arrives as
// one datagram, with its segment size.
func groReceiver(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) })
	if serr != nil {
		t.Skipf("UDP_GRO: %v", serr)
	}
	return c
}

// readGRO reads one datagram and the segment size it was sent with (0:
// none, a datagram on its own).
func readGRO(t *testing.T, c *net.UDPConn) ([]byte, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, oob := make([]byte, 1<<16), make([]byte, 64)
	n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_UDP && m.Header.Type == unix.UDP_GRO && len(m.Data) >= 2 {
			return buf[:n], int(binary.NativeEndian.Uint16(m.Data))
		}
	}
	return buf[:n], 0
}

// TestBindSendsRunsInOneCall: a batch of full-size datagrams and a
// shorter last one, as WireGuard hands a download's packets to the bind,
// leaves in one send (a GRO socket receives it whole, with its segment
// size), and a datagram larger than the run's starts another.
func TestBindSendsRunsInOneCall(t *testing.T) {
	rx := groReceiver(t)
	b := &udpBind{addr: "127.0.0.1:0"}
	if _, _, err := b.Open(0); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var batch [][]byte
	for i := range 5 {
		batch = append(batch, bytes.Repeat([]byte{byte('a' + i)}, 1452))
	}
	batch = append(batch, []byte("short last"), bytes.Repeat([]byte("z"), 1500))
	dst := udpEndpoint(rx.LocalAddr().(*net.UDPAddr).AddrPort())
	if err := b.Send(batch, dst); err != nil {
		t.Fatal(err)
	}
	got, size := readGRO(t, rx)
	if want := bytes.Join(batch[:6], nil); !bytes.Equal(got, want) || size != 1452 {
		t.Errorf("first datagram: %d bytes, segment size %d; want the first six, %d bytes, in segments of 1452", len(got), size, len(want))
	}
	if got, _ := readGRO(t, rx); !bytes.Equal(got, batch[6]) {
		t.Errorf("second datagram: %d bytes, want the last, 1500", len(got))
	}
}

// TestGSORun: how many datagrams of a batch one send carries.
func TestGSORun(t *testing.T) {
	sizes := func(ns ...int) [][]byte {
		var out [][]byte
		for _, n := range ns {
			out = append(out, make([]byte, n))
		}
		return out
	}
	many := make([]int, 100)
	for i := range many {
		many[i] = 1000
	}
	for _, tt := range []struct {
		name  string
		batch [][]byte
		want  int
	}{
		{"one", sizes(1452), 1},
		{"equal", sizes(1452, 1452, 1452), 3},
		{"shorter last", sizes(1452, 1452, 100, 1452), 3},
		{"larger second", sizes(100, 1452), 1},
		{"segment limit", sizes(many...), gsoMaxSegments},
		{"byte limit", sizes(30000, 30000, 30000), 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := gsoRun(tt.batch); got != tt.want {
				t.Errorf("gsoRun = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestGSOSockaddr: destinations as the socket's family takes them; none
// (datagram by datagram) for a zone or an IPv6 address on an IPv4 socket.
func TestGSOSockaddr(t *testing.T) {
	v4 := &gsoSender{}
	v6 := &gsoSender{inet6: true}
	for _, tt := range []struct {
		g    *gsoSender
		dst  string
		want unix.Sockaddr
	}{
		{v4, "192.0.2.7:51820", &unix.SockaddrInet4{Port: 51820, Addr: [4]byte{192, 0, 2, 7}}},
		{v4, "[2001:db8::7]:51820", nil},
		{v6, "192.0.2.7:51820", &unix.SockaddrInet6{Port: 51820, Addr: netip.MustParseAddr("::ffff:192.0.2.7").As16()}},
		{v6, "[2001:db8::7]:51820", &unix.SockaddrInet6{Port: 51820, Addr: netip.MustParseAddr("2001:db8::7").As16()}},
		{v6, "[fe80::7%eth0]:51820", nil},
	} {
		got := tt.g.sockaddr(netip.MustParseAddrPort(tt.dst))
		if (got == nil) != (tt.want == nil) || (got != nil && !sameSockaddr(got, tt.want)) {
			t.Errorf("inet6 %v, %s: %#v, want %#v", tt.g.inet6, tt.dst, got, tt.want)
		}
	}
}

func sameSockaddr(a, b unix.Sockaddr) bool {
	switch a := a.(type) {
	case *unix.SockaddrInet4:
		b, ok := b.(*unix.SockaddrInet4)
		return ok && a.Port == b.Port && a.Addr == b.Addr
	case *unix.SockaddrInet6:
		b, ok := b.(*unix.SockaddrInet6)
		return ok && a.Port == b.Port && a.Addr == b.Addr
	}
	return false
}
