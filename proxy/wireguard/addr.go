package wireguard

import (
	"fmt"
	"net/netip"
)

// The tunnel's address plan. Devices and the server share one IPv4 /24 and
// one IPv6 /64; host number n is 10.73.0.n and fd74:6c73:7265::n, so a
// device's two addresses are told apart by the same number.
//
// 10.73.0.0/24 is an arbitrary block of RFC 1918 space; a phone whose own
// Wi-Fi uses it would lose that LAN while the tunnel is up. The IPv6 prefix
// is a unique local address (RFC 4193 §3.1: fd00::/8 with a 40-bit global
// ID); the ID 0x746c737265 is "tlsre" in ASCII, chosen rather than random
// so that it is recognisable in a capture.
const (
	prefix4 = "10.73.0.0/24"
	prefix6 = "fd74:6c73:7265::/64"
	// serverHost is the server's host number: 10.73.0.1, fd74:6c73:7265::1.
	serverHost = 1
	// firstDeviceHost and lastDeviceHost bound the devices' host numbers:
	// .0 is the network and .255 the broadcast address of the /24.
	firstDeviceHost = 2
	lastDeviceHost  = 254
)

// hostAddrs returns host number n's IPv4 and IPv6 tunnel addresses.
func hostAddrs(n int) (v4, v6 netip.Addr) {
	b4 := netip.MustParsePrefix(prefix4).Addr().As4()
	b4[3] = byte(n)
	b6 := netip.MustParsePrefix(prefix6).Addr().As16()
	b6[15] = byte(n)
	return netip.AddrFrom4(b4), netip.AddrFrom16(b6)
}

// ServerAddrs returns the server's own tunnel addresses, which are also the
// DNS server the devices are told to use. Connections to them are delivered
// to the handlers like any other: the proxy decides what they reach.
func ServerAddrs() (v4, v6 netip.Addr) { return hostAddrs(serverHost) }

// TunnelPrefixes returns the IPv4 and IPv6 prefixes every tunnel address is
// in, the server's and the devices'.
func TunnelPrefixes() (v4, v6 netip.Prefix) {
	return netip.MustParsePrefix(prefix4), netip.MustParsePrefix(prefix6)
}

// hostNumber returns the device host number of a tunnel IPv4 address, or an
// error if a is not one a device can have.
func hostNumber(a netip.Addr) (int, error) {
	p4, _ := TunnelPrefixes()
	if !a.Is4() || !p4.Contains(a) {
		return 0, fmt.Errorf("wireguard: %s is not in the tunnel prefix %s", a, p4)
	}
	n := int(a.As4()[3])
	if n < firstDeviceHost || n > lastDeviceHost {
		return 0, fmt.Errorf("wireguard: %s is not a device address (want .%d to .%d)", a, firstDeviceHost, lastDeviceHost)
	}
	return n, nil
}
