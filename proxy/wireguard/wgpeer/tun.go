package wgpeer

import (
	"context"
	"os"
	"sync"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// peerTun is the tun.Device WireGuard reads and writes: what the netstack
// sends comes out of ep for WireGuard to encrypt, and packets WireGuard
// decrypts go into the netstack through ep. No kernel device is involved.
type peerTun struct {
	ep     *channel.Endpoint
	events chan tun.Event
	ctx    context.Context // cancelled by Close: Read returns
	cancel context.CancelFunc
	once   sync.Once
}

var _ tun.Device = (*peerTun)(nil)

func newTun(ep *channel.Endpoint) *peerTun {
	ctx, cancel := context.WithCancel(context.Background())
	t := &peerTun{ep: ep, events: make(chan tun.Event, 1), ctx: ctx, cancel: cancel}
	t.events <- tun.EventUp
	return t
}

func (t *peerTun) File() *os.File           { return nil }
func (t *peerTun) MTU() (int, error)        { return mtu, nil }
func (t *peerTun) Name() (string, error)    { return "wgpeer", nil }
func (t *peerTun) Events() <-chan tun.Event { return t.events }

// BatchSize is how many packets Read may return at once: WireGuard then
// encrypts them in parallel and sends them together (conn.StdNetBind: one
// system call, and one datagram segmented by the kernel, UDP GSO).
func (t *peerTun) BatchSize() int { return conn.IdealBatchSize }

// Read blocks for the next packet the netstack sends, then takes as many
// more as are queued, up to len(bufs). After Close it returns
// os.ErrClosed, which ends WireGuard's reading goroutine.
func (t *peerTun) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := t.ep.ReadContext(t.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copyPacket(bufs[n][offset:], pkt)
		n++
		if n == len(bufs) {
			return n, nil
		}
		if pkt = t.ep.Read(); pkt == nil {
			return n, nil
		}
	}
}

// copyPacket copies pkt into b, releases it and returns its length.
func copyPacket(b []byte, pkt *stack.PacketBuffer) int {
	defer pkt.DecRef()
	n := 0
	for _, s := range pkt.AsSlices() {
		n += copy(b[n:], s)
	}
	return n
}

// Write hands packets WireGuard decrypted to the netstack, which processes
// each before Write returns.
func (t *peerTun) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch pkt[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			return 0, syscall.EAFNOSUPPORT
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		t.ep.InjectInbound(proto, pb)
		pb.DecRef()
	}
	return len(bufs), nil
}

// Close ends Read and closes the events channel; the netstack is closed by
// the peer.
func (t *peerTun) Close() error {
	t.once.Do(func() {
		t.cancel()
		close(t.events)
	})
	return nil
}
