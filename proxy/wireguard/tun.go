package wireguard

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/nettun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the netstack's only network interface: the tunnel.
const nicID tcpip.NICID = 1

// newStack returns a gVisor netstack whose one interface, link, accepts
// packets to every address (promiscuous) and may answer from every address
// (spoofing): a device's connection to any destination is terminated here,
// and the answers seem to come from that destination. The server's own
// tunnel addresses are added so that pings to them are answered.
func newStack(link *nettun.Link) (*stack.Stack, error) {
	// A device's packets to loopback addresses are delivered too, not
	// dropped as martians (gVisor's default on a non-loopback interface):
	// the handler refuses them with a reset and says why, or, when asked,
	// lets them reach this machine. WireGuard has already dropped any
	// packet whose source is not its device's (cryptokey routing).
	local4 := ipv4.NewProtocolWithOptions(ipv4.Options{AllowExternalLoopbackTraffic: true})
	local6 := ipv6.NewProtocolWithOptions(ipv6.Options{AllowExternalLoopbackTraffic: true})
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{local4, local6},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
	})
	sack := tcpip.TCPSACKEnabled(true) // off by default in gVisor; every phone offers it
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("wireguard: enabling TCP SACK: %s", err)
	}
	// A connection the server closed first stays in TIME_WAIT for a
	// second, not gVisor's minute: gVisor drops a device's new SYN on the
	// same ports meanwhile (it hands such a SYN only to a listening
	// endpoint, tcp/connect.go, and this stack has none: a forwarder),
	// where Linux would take it (RFC 1122 §4.2.2.13), so a device picking
	// a port it used lately waited out the minute (TestReconnectAfterServerClose;
	// loadbench's device, thousands of connections a minute on random
	// ports, had one in a few hundred time out). A second still answers a
	// device's retransmitted FIN on a LAN; each endpoint kept is ~19 KB.
	tw := tcpip.TCPTimeWaitTimeoutOption(time.Second)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
		return nil, fmt.Errorf("wireguard: setting TCP TIME_WAIT: %s", err)
	}
	if err := s.CreateNIC(nicID, link); err != nil {
		return nil, fmt.Errorf("wireguard: creating the netstack interface: %s", err)
	}
	if err := s.SetPromiscuousMode(nicID, true); err != nil {
		return nil, fmt.Errorf("wireguard: promiscuous mode: %s", err)
	}
	if err := s.SetSpoofing(nicID, true); err != nil {
		return nil, fmt.Errorf("wireguard: spoofing: %s", err)
	}
	v4, v6 := ServerAddrs()
	for _, a := range []netip.Addr{v4, v6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("wireguard: adding %s: %s", a, err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	return s, nil
}

// dropEcho reports whether pkt is an ICMP or ICMPv6 echo request to an
// address other than the server's own. In promiscuous mode the netstack
// would answer a ping to any address, so a device would see 8.8.8.8 answer
// in a millisecond when nothing reached it; ICMP is never sent on to the
// real network, so such pings are dropped and time out instead.
func dropEcho(pkt []byte) bool {
	s4, s6 := ServerAddrs()
	switch {
	case len(pkt) >= header.IPv4MinimumSize && pkt[0]>>4 == 4:
		h := header.IPv4(pkt)
		hl := int(h.HeaderLength())
		if h.Protocol() != uint8(header.ICMPv4ProtocolNumber) || len(pkt) <= hl || h.FragmentOffset() != 0 {
			return false
		}
		return header.ICMPv4(pkt[hl:]).Type() == header.ICMPv4Echo && h.DestinationAddress().As4() != s4.As4()
	case len(pkt) > header.IPv6MinimumSize && pkt[0]>>4 == 6:
		h := header.IPv6(pkt)
		if h.NextHeader() != uint8(header.ICMPv6ProtocolNumber) {
			return false
		}
		return header.ICMPv6(pkt[header.IPv6MinimumSize:]).Type() == header.ICMPv6EchoRequest && h.DestinationAddress().As16() != s6.As16()
	}
	return false
}
