package wgpeer

import (
	"context"
	"os"
	"sync"
	"syscall"

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
func (t *peerTun) BatchSize() int           { return 1 }

// Read blocks for the next packet the netstack sends. After Close it
// returns os.ErrClosed, which ends WireGuard's reading goroutine.
func (t *peerTun) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := t.ep.ReadContext(t.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	defer pkt.DecRef()
	n := 0
	for _, s := range pkt.AsSlices() {
		n += copy(bufs[0][offset+n:], s)
	}
	sizes[0] = n
	return 1, nil
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
