package wgsource

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// refusal says why a device may not reach dst, or nil. A device is a
// phone on the LAN, not this machine's user: its connections must not
// reach the laptop's own services (a database on loopback, a cloud
// metadata address on the link) unless Config.Local says so, and never
// tlsresume itself. The tunnel's own address, port 53 (DNS) and 80 (the
// CA page), is answered before this is asked.
func (s *Source) refusal(dst netip.AddrPort) error {
	a := dst.Addr().Unmap()
	p4, p6 := wireguard.TunnelPrefixes()
	switch {
	case a.IsUnspecified():
		return fmt.Errorf("refused: %s is no destination", dst)
	case p4.Contains(a) || p6.Contains(a):
		v4, _ := wireguard.ServerAddrs()
		return fmt.Errorf("refused: %s is inside the WireGuard tunnel, where only its DNS (%s port 53) and http://%s/ (port 80) are served", dst, v4, proxy.MagicHost)
	case s.proxy.Load().IsSelf(dst):
		return fmt.Errorf("refused: %s is tlsresume itself (one of its listeners)", dst)
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("refused: %s is multicast or broadcast, which is not relayed", dst)
	case s.cfg.Local:
		return nil
	case a.IsLoopback():
		return fmt.Errorf("refused: %s is this machine (loopback); --wireguard-local lets devices reach it", dst)
	case a.IsLinkLocalUnicast():
		return fmt.Errorf("refused: %s is link-local, on this machine's own link; --wireguard-local lets devices reach it", dst)
	case isInterfaceAddr(a):
		return fmt.Errorf("refused: %s is an address of this machine; --wireguard-local lets devices reach it", dst)
	}
	return nil
}

// isInterfaceAddr reports whether a is the address of one of this
// machine's interfaces. When they cannot be listed it says yes: refusing
// is the safe side.
func isInterfaceAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap().WithZone("") == a {
			return true
		}
	}
	return false
}
