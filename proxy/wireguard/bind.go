package wireguard

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/conn"
)

// udpBind is WireGuard's network side: one UDP socket on exactly the
// configured address. The library's own bind (conn.StdNetBind) listens on a
// port on every address, IPv4 and IPv6; --wireguard 192.168.1.20:51820 must
// listen there only, and tests must listen on loopback only. Like
// StdNetBind it reads a batch of datagrams in one call (recvmmsg), and it
// sends a batch to one device in one call, with UDP GSO on Linux
// (gso_linux.go): a download through the tunnel is such batches.
type udpBind struct {
	addr  string       // the configured address, e.g. "0.0.0.0:51820"
	bound *net.UDPConn // Config.Conn, taken by the first Open; nil then

	mu   sync.Mutex
	conn *net.UDPConn
	gso  *gsoSender // sends on conn
	port uint16     // kept across Close and Open, so a reopened bind keeps its port
}

var _ conn.Bind = (*udpBind)(nil)

// socketBuffer is the UDP socket's buffer size, StdNetBind's.
const socketBuffer = 7 << 20

// Open listens on the configured address, or takes the socket the caller
// bound (Config.Conn) the first time; the device's own port (set by
// listen_port, which this server never sets) is ignored. Once a port has
// been chosen for port 0 it is kept for later Opens.
func (b *udpBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c, err := b.listen()
	if err != nil {
		return nil, 0, err
	}
	// As StdNetBind: the default (about 200 KB on Linux) overflows in a
	// burst of one TCP window and every drop costs TCP a retransmission.
	// The kernel caps it at net.core.rmem_max / wmem_max.
	_ = c.SetReadBuffer(socketBuffer)
	_ = c.SetWriteBuffer(socketBuffer)
	b.conn, b.gso = c, newGSOSender(c)
	b.port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
	return []conn.ReceiveFunc{b.receiver(c)}, b.port, nil
}

// listen returns the caller's socket, once, else a new one on the
// configured address (and the port chosen before, if any).
func (b *udpBind) listen() (*net.UDPConn, error) {
	if c := b.bound; c != nil {
		b.bound = nil
		return c, nil
	}
	la, err := net.ResolveUDPAddr("udp", b.addr)
	if err != nil {
		return nil, err
	}
	if b.port != 0 {
		la.Port = int(b.port)
	}
	return net.ListenUDP("udp", la)
}

// receiver reads the datagrams waiting on c, up to len(packets), in one
// system call (recvmmsg(2) on Linux; one per call elsewhere), so that
// WireGuard decrypts them as a batch and hands them to the netstack
// together, where consecutive TCP segments are coalesced (nettun). After
// Close it returns net.ErrClosed, as conn.Bind requires. WireGuard calls
// it from one goroutine.
func (b *udpBind) receiver(c *net.UDPConn) conn.ReceiveFunc {
	pc := ipv6.NewPacketConn(c) // either family: recvmmsg reads the address as it is
	msgs := make([]ipv6.Message, receiveBatch)
	for i := range msgs {
		msgs[i].Buffers = make([][]byte, 1)
	}
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		ms := msgs[:min(len(packets), len(msgs))]
		for i := range ms {
			ms[i].Buffers[0], ms[i].N, ms[i].Addr = packets[i], 0, nil
		}
		n, err := pc.ReadBatch(ms, 0)
		if err != nil {
			return 0, err
		}
		for i := range n {
			sizes[i] = ms[i].N
			from := ms[i].Addr.(*net.UDPAddr).AddrPort()
			eps[i] = udpEndpoint(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
		}
		return n, nil
	}
}

// localAddr returns the socket's address, or nil when it is closed.
func (b *udpBind) localAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	return b.conn.LocalAddr()
}

func (b *udpBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn, b.gso = nil, nil
	return err
}

// closeUnused closes the caller's socket if no Open took it. Close must
// not: WireGuard closes its bind before it first opens it (BindUpdate).
func (b *udpBind) closeUnused() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bound != nil {
		b.bound.Close()
		b.bound = nil
	}
}

// SetMark is for SO_MARK routing on Linux, which this server does not use.
func (b *udpBind) SetMark(uint32) error { return nil }

func (b *udpBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	dst, ok := ep.(udpEndpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	b.mu.Lock()
	g := b.gso
	b.mu.Unlock()
	if g == nil {
		return net.ErrClosed
	}
	return g.send(bufs, netip.AddrPort(dst))
}

func (b *udpBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return udpEndpoint(ap), nil
}

// BatchSize is how many datagrams a receive may return. WireGuard keeps a
// 64 KiB buffer per datagram of the batch for as long as it runs: 32 hold
// 2 MiB where wireguard-go's 128 held 8 MiB, and a tunnel's bulk transfer
// measured the same (loadbench -phases bulk_h1,bulk_h2). What WireGuard
// hands Send at once is the tun device's batch (nettun), 128.
func (b *udpBind) BatchSize() int { return receiveBatch }

const receiveBatch = 32

// udpEndpoint is a device's current UDP address.
type udpEndpoint netip.AddrPort

func (e udpEndpoint) ClearSrc()           {}
func (e udpEndpoint) SrcToString() string { return "" }
func (e udpEndpoint) DstToString() string { return netip.AddrPort(e).String() }
func (e udpEndpoint) DstIP() netip.Addr   { return netip.AddrPort(e).Addr() }
func (e udpEndpoint) SrcIP() netip.Addr   { return netip.Addr{} }

// DstToBytes identifies the address for WireGuard's cookie MAC (mac2).
func (e udpEndpoint) DstToBytes() []byte {
	b, _ := netip.AddrPort(e).MarshalBinary()
	return b
}
