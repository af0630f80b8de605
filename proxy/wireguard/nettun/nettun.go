// Package nettun joins wireguard-go to a gVisor netstack in one process:
// Device is the tun.Device WireGuard reads and writes, and its Link is the
// netstack's network interface. No kernel device is involved.
//
// It lets the netstack's TCP handle a stream in large pieces rather than
// one per packet, as a network card's offloads let a kernel's:
//   - segmentation: a connection sends up to 32 KiB at a time, which Read
//     cuts into packets of the connection's MSS, straight into WireGuard's
//     buffers, with their headers and checksums (stack.HostGSOSupported,
//     cut.go);
//   - receive coalescing: Write hands the packets WireGuard decrypted in
//     one batch to gVisor's GRO, which joins consecutive segments of a
//     connection before its TCP sees them.
//
// The WireGuard server (package wireguard) and the device in this process
// (package wgpeer) both use it. It imports golang.zx2c4.com/wireguard and
// gvisor.dev/gvisor, and nothing of tlsresume's.
package nettun

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
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// outQueue is how many packets (or large segments) the netstack may queue
// for WireGuard to encrypt before it drops (TCP then retransmits), as
// wireguard-go's tun/netstack.
const outQueue = 1024

// Device is the tun.Device between WireGuard and a netstack.
type Device struct {
	link   *Link
	mtu    int
	drop   func(pkt []byte) bool
	events chan tun.Event

	ctx       context.Context // cancelled by Close: Read returns
	cancel    context.CancelFunc
	closeOnce sync.Once

	cutter cutter    // Read's; WireGuard reads from one goroutine
	gros   sync.Pool // of *gro.GRO: Write is called by a goroutine per peer
}

var _ tun.Device = (*Device)(nil)

// New returns a Device whose packets have at most mtu bytes. drop, when
// not nil, is asked about each packet WireGuard decrypted before the
// netstack sees it; true discards the packet.
func New(mtu int, drop func(pkt []byte) bool) *Device {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Device{
		link:   newLink(outQueue, uint32(mtu)),
		mtu:    mtu,
		drop:   drop,
		events: make(chan tun.Event, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	d.gros.New = func() any {
		g := &gro.GRO{Dispatcher: d.link}
		g.Init(true)
		return g
	}
	d.events <- tun.EventUp
	return d
}

// Link is the network interface to give the netstack (stack.CreateNIC).
func (d *Device) Link() *Link { return d.link }

func (d *Device) File() *os.File           { return nil }
func (d *Device) MTU() (int, error)        { return d.mtu, nil }
func (d *Device) Name() (string, error)    { return "nettun", nil }
func (d *Device) Events() <-chan tun.Event { return d.events }

// BatchSize is how many packets Read may return at once: WireGuard then
// encrypts them in parallel and hands them to its bind together, which
// may send them in one system call.
func (d *Device) BatchSize() int { return conn.IdealBatchSize }

// Read blocks for the next packet the netstack sends, then takes as many
// more as are queued, up to len(bufs), cutting large segments into
// packets (cut.go). After Close it returns os.ErrClosed, which ends
// WireGuard's reading goroutine.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for n < len(bufs) {
		if d.cutter.pending() {
			n += d.cutter.cut(bufs[n:], sizes[n:], offset)
			continue
		}
		var pkt *stack.PacketBuffer
		if n == 0 {
			if pkt = d.link.ReadContext(d.ctx); pkt == nil {
				return 0, os.ErrClosed
			}
		} else if pkt = d.link.Read(); pkt == nil {
			break
		}
		if pkt.GSOOptions.Type == stack.GSONone {
			sizes[n] = copyPacket(bufs[n][offset:], pkt)
			n++
		} else {
			d.cutter.load(pkt)
		}
	}
	return n, nil
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

// Write hands packets WireGuard decrypted to the netstack, coalescing
// consecutive TCP segments of a connection, and returns when the netstack
// has processed them all.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	g := d.gros.Get().(*gro.GRO)
	defer d.gros.Put(g)
	defer g.Flush()
	for _, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 || (d.drop != nil && d.drop(pkt)) {
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
		if !checksumsValid(pkt) {
			continue // as a kernel drops it; the device's TCP sends again
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		pb.NetworkProtocolNumber = proto
		pb.RXChecksumValidated = true
		g.Enqueue(pb)
		pb.DecRef()
	}
	return len(bufs), nil
}

// Close ends Read and closes the events channel; the netstack is closed by
// its owner.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.cancel()
		close(d.events)
	})
	return nil
}

// Link is the netstack's side of a Device: a channel endpoint on which the
// netstack's TCP may send large segments for the Device to cut
// (stack.HostGSOSupported), and which keeps the netstack's dispatcher for
// GRO. It says it validates received checksums itself
// (CapabilityRXChecksumOffload), as Write does (checksumsValid): the
// netstack would otherwise check a coalesced packet's IPv4 header
// checksum, which GRO does not update, and drop it.
type Link struct {
	*channel.Endpoint

	mu         sync.RWMutex
	dispatcher stack.NetworkDispatcher
}

func newLink(size int, mtu uint32) *Link {
	ep := channel.New(size, mtu, "")
	ep.SupportedGSOKind = stack.HostGSOSupported
	ep.LinkEPCapabilities |= stack.CapabilityRXChecksumOffload
	return &Link{Endpoint: ep}
}

// Attach keeps the netstack's dispatcher, to which GRO delivers.
func (l *Link) Attach(d stack.NetworkDispatcher) {
	l.mu.Lock()
	l.dispatcher = d
	l.mu.Unlock()
	l.Endpoint.Attach(d)
}

// DeliverNetworkPacket hands a packet to the netstack, or drops it before
// the netstack is attached or after it detached.
func (l *Link) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	l.mu.RLock()
	d := l.dispatcher
	l.mu.RUnlock()
	if d != nil {
		d.DeliverNetworkPacket(proto, pkt)
	}
}

// DeliverLinkPacket is not used: the link has no link-layer header.
func (l *Link) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

var _ stack.NetworkDispatcher = (*Link)(nil)
