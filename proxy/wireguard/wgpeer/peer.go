package wgpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/nettun"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// mtu is the tunnel's inner MTU, WireGuard's default and what
// wireguard.WGQuick's servers use: 1500 less 80 bytes of IPv6, UDP and
// WireGuard headers.
const mtu = 1420

// nicID is the netstack's only interface: the tunnel.
const nicID tcpip.NICID = 1

// Peer is a WireGuard client in this process, as a phone's app is:
// wireguard-go over gVisor's netstack, configured from a wg-quick text.
// Every connection it dials goes through the tunnel.
type Peer struct {
	conf  Config
	dev   *device.Device
	stack *stack.Stack
	once  sync.Once
}

// Start starts a peer for text (wg-quick) that sends to its server at
// endpoint, HOST:PORT: a test's loopback server rather than the LAN
// address the text names; "" is the text's Endpoint. WireGuard's
// handshake happens on the first packet sent. Close stops it.
func Start(text, endpoint string) (*Peer, error) {
	c, err := ParseConfig(text)
	if err != nil {
		return nil, err
	}
	if endpoint == "" {
		endpoint = c.Endpoint
	}
	if _, err := netip.ParseAddrPort(endpoint); err != nil {
		return nil, fmt.Errorf("wgpeer: endpoint %q: want ip:port: %w", endpoint, err)
	}
	p := &Peer{conf: c}
	tun := nettun.New(mtu, nil)
	if p.stack, err = newStack(tun.Link(), c.Address); err != nil {
		return nil, err
	}
	p.dev = device.NewDevice(tun, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	if err := p.dev.IpcSet(c.UAPI(endpoint)); err != nil {
		p.Close()
		return nil, fmt.Errorf("wgpeer: configuring WireGuard: %w", err)
	}
	if err := p.dev.Up(); err != nil {
		p.Close()
		return nil, fmt.Errorf("wgpeer: starting WireGuard: %w", err)
	}
	return p, nil
}

// newStack is a netstack with one interface, link, holding addrs, through
// which every route goes. Unlike wireguard-go's own tun/netstack it takes
// packets from loopback addresses, so that a peer reaches a loopback
// origin through a server that lets devices reach the machine it runs on.
func newStack(link *nettun.Link, addrs []netip.Prefix) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{
			ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true}),
			ipv6.NewProtocolWithOptions(ipv6.Options{AllowExternalLoopbackTraffic: true}),
		},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true) // off by default in gVisor; every phone offers it
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("wgpeer: enabling TCP SACK: %s", err)
	}
	// A closed connection stays in TIME_WAIT for a second, not gVisor's
	// minute: a phone's kernel keeps one in a few hundred bytes, gVisor its
	// whole endpoint (about 19 KB), and cmd/loadbench's device closing
	// hundreds a second would hold hundreds of MB, whose GC it would pay.
	tw := tcpip.TCPTimeWaitTimeoutOption(time.Second)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
		return nil, fmt.Errorf("wgpeer: TIME_WAIT: %s", err)
	}
	if err := s.CreateNIC(nicID, link); err != nil {
		return nil, fmt.Errorf("wgpeer: creating the netstack interface: %s", err)
	}
	for _, a := range addrs {
		pa := tcpip.ProtocolAddress{Protocol: netProto(a.Addr()), AddressWithPrefix: tcpip.AddrFromSlice(a.Addr().AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("wgpeer: adding %s: %s", a, err)
		}
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}, {Destination: header.IPv6EmptySubnet, NIC: nicID}})
	return s, nil
}

// Config is the configuration the peer was started from.
func (p *Peer) Config() Config { return p.conf }

// Close stops WireGuard and resets every connection still open. It may be
// called more than once.
func (p *Peer) Close() error {
	p.once.Do(func() {
		if p.dev != nil {
			p.dev.Close()
		}
		p.stack.Close()
		p.stack.Wait()
	})
	return nil
}

// DialTCP connects to dst through the tunnel.
func (p *Peer) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, p.stack, fullAddr(dst), netProto(dst.Addr()))
	if err != nil {
		return nil, err // not a typed nil in an interface
	}
	return c, nil
}

// DialTCPFrom connects to dst through the tunnel from port srcPort of the
// peer's first address, as a device that reuses a port does: for tests of
// what the server keeps of a connection to that port (TIME_WAIT).
func (p *Peer) DialTCPFrom(ctx context.Context, srcPort uint16, dst netip.AddrPort) (net.Conn, error) {
	var src netip.Addr
	for _, a := range p.conf.Address {
		if a.Addr().Is4() == dst.Addr().Unmap().Is4() {
			src = a.Addr()
			break
		}
	}
	if !src.IsValid() {
		return nil, fmt.Errorf("wgpeer: no address of %s's family to dial from", dst)
	}
	c, err := gonet.DialTCPWithBind(ctx, p.stack, fullAddr(netip.AddrPortFrom(src, srcPort)), fullAddr(dst), netProto(dst.Addr()))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialUDP makes a connected UDP socket to dst through the tunnel.
func (p *Peer) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	fa := fullAddr(dst)
	c, err := gonet.DialUDP(p.stack, nil, &fa, netProto(dst.Addr()))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialContext connects through the tunnel as net.Dialer.DialContext does,
// for an http.Transport or a tls.Dialer: network is tcp, tcp4, tcp6, udp,
// udp4 or udp6, and address is IP:PORT. Names are not looked up; Resolver
// looks them up through the tunnel.
func (p *Peer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	dst, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("wgpeer: dial %s %s: want ip:port: %w", network, address, err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		return p.DialTCP(ctx, dst)
	case "udp", "udp4", "udp6":
		return p.DialUDP(dst)
	}
	return nil, fmt.Errorf("wgpeer: dial %s %s: network not tcp or udp", network, address)
}

// Resolver looks names up through the tunnel, at the first DNS server the
// configuration names, as the phone's system would.
func (p *Peer) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if len(p.conf.DNS) == 0 {
			return nil, errors.New("wgpeer: the WireGuard configuration names no DNS server")
		}
		dst := netip.AddrPortFrom(p.conf.DNS[0], 53)
		if strings.HasPrefix(network, "tcp") {
			return p.DialTCP(ctx, dst)
		}
		return p.DialUDP(dst)
	}}
}

func fullAddr(a netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(a.Addr().Unmap().AsSlice()), Port: a.Port()}
}

func netProto(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Unmap().Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}
