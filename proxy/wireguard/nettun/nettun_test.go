package nettun

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// TestTunReadBatches: Read returns every packet the netstack has queued,
// up to the buffers it is given, so that WireGuard encrypts and sends them
// as one batch; it blocks only for the first.
func TestTunReadBatches(t *testing.T) {
	tun := New(1420, nil)
	ep := tun.Link()
	defer tun.Close()
	var pkts stack.PacketBufferList
	for i := range 5 {
		pkts.PushBack(stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData([]byte{0x45, byte(i)})}))
	}
	if n, err := ep.WritePackets(pkts); err != nil || n != 5 {
		t.Fatalf("queued %d packets: %v", n, err)
	}
	pkts.DecRef()
	bufs := make([][]byte, 3)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, len(bufs))
	for _, want := range []int{3, 2} {
		n, err := tun.Read(bufs, sizes, 16)
		if err != nil || n != want {
			t.Fatalf("Read = %d, %v; want %d packets", n, err, want)
		}
		for i := range n {
			if sizes[i] != 2 || bufs[i][16] != 0x45 {
				t.Errorf("packet %d: size %d, % x", i, sizes[i], bufs[i][16:18])
			}
		}
	}
}

// pair is two netstacks, a (10.9.0.1, fd09::1) and b (10.9.0.2, fd09::2),
// whose Devices are joined by goroutines moving packets from one's Read to
// the other's Write, as WireGuard does after decrypting them.
type pair struct {
	a, b   *stack.Stack
	da, db *Device
	// written counts the packets each side's Write was given.
	writtenA, writtenB atomic.Int64
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{da: New(1420, nil), db: New(1420, nil)}
	p.a = testStack(t, p.da, "10.9.0.1", "fd09::1")
	p.b = testStack(t, p.db, "10.9.0.2", "fd09::2")
	go pump(p.da, p.db, &p.writtenB)
	go pump(p.db, p.da, &p.writtenA)
	t.Cleanup(func() {
		p.da.Close()
		p.db.Close()
		p.a.Close()
		p.b.Close()
	})
	return p
}

func testStack(t *testing.T, d *Device, v4, v6 string) *stack.Stack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, d.Link()); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{v4, v6} {
		addr := netip.MustParseAddr(a)
		proto := ipv4.ProtocolNumber
		if addr.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(addr.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			t.Fatal(err)
		}
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	return s
}

// pump moves packets from's netstack sends into to's netstack until from
// is closed.
func pump(from, to *Device, written *atomic.Int64) {
	const offset = 16
	bufs := make([][]byte, from.BatchSize())
	out := make([][]byte, len(bufs))
	for i := range bufs {
		bufs[i] = make([]byte, offset+1500)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := from.Read(bufs, sizes, offset)
		if err != nil {
			return
		}
		for i := range n {
			out[i] = bufs[i][:offset+sizes[i]]
		}
		written.Add(int64(n))
		to.Write(out[:n], offset)
	}
}

// TestStream: 8 MiB each way over TCP between two netstacks joined by
// Devices, over IPv4 and IPv6, arrive whole and in order; the receiving
// TCP saw fewer segments than Write was given packets (GRO joined them),
// and no packet the sender cut was larger than the MTU (pump's buffers
// would have cut it short and the stream would not arrive whole).
func TestStream(t *testing.T) {
	for _, dst := range []string{"10.9.0.2", "fd09::2"} {
		t.Run(dst, func(t *testing.T) {
			p := newPair(t)
			addr := netip.MustParseAddr(dst)
			proto := ipv4.ProtocolNumber
			if addr.Is6() {
				proto = ipv6.ProtocolNumber
			}
			full := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(addr.AsSlice()), Port: 9}
			ln, err := gonet.ListenTCP(p.b, full, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			const size = 8 << 20
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i * 7 / 13)
			}
			errc := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					errc <- err
					return
				}
				defer c.Close()
				got := make([]byte, size)
				if _, err := io.ReadFull(c, got); err != nil {
					errc <- err
					return
				}
				if !bytes.Equal(got, want) {
					errc <- errors.New("upload arrived changed")
					return
				}
				_, err = c.Write(want) // and back
				errc <- err
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := gonet.DialContextTCP(ctx, p.a, full, proto)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(want); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, size)
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("download arrived changed")
			}
			segs := p.b.Stats().TCP.ValidSegmentsReceived.Value()
			if w := uint64(p.writtenB.Load()); segs >= w {
				t.Errorf("b's TCP took %d segments from %d packets written: nothing was coalesced", segs, w)
			} else {
				t.Logf("b's TCP took %d segments from %d packets written", segs, w)
			}
		})
	}
}
