package tlstest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// WGConf is a wg-quick configuration for one peer, as a WireGuard app
// reads it from a file or a QR code.
type WGConf struct {
	PrivateKey, PeerKey [32]byte
	Address             []netip.Prefix
	DNS                 []netip.Addr
	Endpoint            string
	AllowedIPs          []netip.Prefix
}

// ParseWGConf reads the keys a wg-quick file for one peer may hold
// (Interface: PrivateKey, Address, DNS; Peer: PublicKey, Endpoint,
// AllowedIPs), refusing any other, as an app would fail on a misspelt one.
func ParseWGConf(text string) (WGConf, error) {
	var c WGConf
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "[Interface]" || line == "[Peer]" {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("wg-quick: line %q has no '='", line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch section + k {
		case "[Interface]PrivateKey":
			c.PrivateKey, err = wgKey(v)
		case "[Interface]Address":
			c.Address, err = wgList(v, netip.ParsePrefix)
		case "[Interface]DNS":
			c.DNS, err = wgList(v, netip.ParseAddr)
		case "[Peer]PublicKey":
			c.PeerKey, err = wgKey(v)
		case "[Peer]Endpoint":
			c.Endpoint = v
		case "[Peer]AllowedIPs":
			c.AllowedIPs, err = wgList(v, netip.ParsePrefix)
		default:
			return c, fmt.Errorf("wg-quick: unknown key %q in section %q", k, section)
		}
		if err != nil {
			return c, fmt.Errorf("wg-quick: %s: %w", k, err)
		}
	}
	return c, nil
}

func wgKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("not a base64 key of 32 bytes")
	}
	copy(k[:], b)
	return k, nil
}

func wgList[T any](v string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, s := range strings.Split(v, ",") {
		x, err := parse(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// WGPeer is a WireGuard client in this process, as a phone's app is:
// wireguard-go over gVisor's netstack, configured from a wg-quick text.
// Unlike wireguard-go's own netstack (tun/netstack), it accepts answers
// from loopback addresses, so a test can reach a loopback origin through a
// server that lets devices reach the machine it runs on.
type WGPeer struct {
	Conf  WGConf
	dev   *device.Device
	stack *stack.Stack
	once  sync.Once
}

// StartWGPeer starts a peer for conf (wg-quick text) that reaches its
// server at endpoint (e.g. the loopback address a test server listens on,
// rather than the LAN address the text names), or ends t. It stops when t
// ends, or at Close.
func StartWGPeer(t testing.TB, conf, endpoint string) *WGPeer {
	t.Helper()
	c, err := ParseWGConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := &WGPeer{Conf: c}
	ep := channel.New(1024, 1420, "")
	if p.stack, err = peerStack(ep, c.Address); err != nil {
		t.Fatal(err)
	}
	p.dev = device.NewDevice(newPeerTun(ep), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	var uapi strings.Builder
	fmt.Fprintf(&uapi, "private_key=%s\npublic_key=%s\nendpoint=%s\n", hex.EncodeToString(c.PrivateKey[:]), hex.EncodeToString(c.PeerKey[:]), endpoint)
	for _, a := range c.AllowedIPs {
		fmt.Fprintf(&uapi, "allowed_ip=%s\n", a)
	}
	if err := p.dev.IpcSet(uapi.String()); err != nil {
		p.Close()
		t.Fatalf("configuring the WireGuard peer: %v", err)
	}
	if err := p.dev.Up(); err != nil {
		p.Close()
		t.Fatalf("starting the WireGuard peer: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// peerStack is a netstack with one interface, ep, holding addrs, through
// which every route goes; it takes packets from loopback addresses.
func peerStack(ep *channel.Endpoint, addrs []netip.Prefix) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true}),
			ipv6.NewProtocolWithOptions(ipv6.Options{AllowExternalLoopbackTraffic: true}),
		},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		return nil, fmt.Errorf("creating the peer's interface: %s", err)
	}
	for _, a := range addrs {
		proto := ipv4.ProtocolNumber
		if a.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.Addr().AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("adding %s: %s", a, err)
		}
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}, {Destination: header.IPv6EmptySubnet, NIC: 1}})
	return s, nil
}

// Close stops the peer. It may be called more than once.
func (p *WGPeer) Close() {
	p.once.Do(func() {
		if p.dev != nil {
			p.dev.Close()
		}
		p.stack.Close()
	})
}

// DialTCP connects to dst through the tunnel.
func (p *WGPeer) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, p.stack, fullAddr(dst), netProto(dst.Addr()))
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return c, nil
}

// DialUDP makes a connected UDP socket to dst through the tunnel.
func (p *WGPeer) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	fa := fullAddr(dst)
	c, err := gonet.DialUDP(p.stack, nil, &fa, netProto(dst.Addr()))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Resolver looks names up through the tunnel, at the first DNS server the
// configuration names, as the phone's system would.
func (p *WGPeer) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if len(p.Conf.DNS) == 0 {
			return nil, fmt.Errorf("the WireGuard configuration names no DNS server")
		}
		dst := netip.AddrPortFrom(p.Conf.DNS[0], 53)
		if strings.HasPrefix(network, "tcp") {
			return p.DialTCP(ctx, dst)
		}
		return p.DialUDP(dst)
	}}
}

func fullAddr(a netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(a.Addr().Unmap().AsSlice()), Port: a.Port()}
}

func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Unmap().Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

// peerTun moves packets between WireGuard and the peer's netstack.
type peerTun struct {
	ep     *channel.Endpoint
	events chan tun.Event
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func newPeerTun(ep *channel.Endpoint) *peerTun {
	ctx, cancel := context.WithCancel(context.Background())
	t := &peerTun{ep: ep, events: make(chan tun.Event, 1), ctx: ctx, cancel: cancel}
	t.events <- tun.EventUp
	return t
}

func (t *peerTun) File() *os.File           { return nil }
func (t *peerTun) MTU() (int, error)        { return 1420, nil }
func (t *peerTun) Name() (string, error)    { return "tlstest-peer", nil }
func (t *peerTun) Events() <-chan tun.Event { return t.events }
func (t *peerTun) BatchSize() int           { return 1 }

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

func (t *peerTun) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		pkt := b[offset:]
		if len(pkt) == 0 {
			continue
		}
		proto := header.IPv4ProtocolNumber
		if pkt[0]>>4 == 6 {
			proto = header.IPv6ProtocolNumber
		}
		pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
		t.ep.InjectInbound(proto, pb)
		pb.DecRef()
	}
	return len(bufs), nil
}

func (t *peerTun) Close() error {
	t.once.Do(func() {
		t.cancel()
		close(t.events)
	})
	return nil
}
