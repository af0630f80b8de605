package wireguard

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is WireGuard's customary UDP port.
const DefaultPort = 51820

// WGQuick returns the wg-quick configuration that device d installs: its
// private key and tunnel addresses, the server as DNS, and the server as
// its only peer, reached at endpoint (HOST:PORT, the laptop's LAN address)
// and carrying all of its IPv4 and IPv6 traffic. The WireGuard apps for
// iOS and Android import this text from a file or a QR code. It holds the
// device's private key.
func WGQuick(d Device, serverKey Key, endpoint string) (string, error) {
	if _, err := checkEndpoint(endpoint); err != nil {
		return "", err
	}
	s4, s6 := ServerAddrs()
	var b strings.Builder
	fmt.Fprintf(&b, "# tlsresume WireGuard device %q. This file holds the device's private key: keep it private.\n", d.Name)
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", d.PrivateKey)
	fmt.Fprintf(&b, "Address = %s, %s\n", netip.PrefixFrom(d.IPv4, 32), netip.PrefixFrom(d.IPv6, 128))
	fmt.Fprintf(&b, "DNS = %s, %s\n", s4, s6)
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", serverKey.Public())
	fmt.Fprintf(&b, "Endpoint = %s\n", endpoint)
	b.WriteString("AllowedIPs = 0.0.0.0/0, ::/0\n")
	return b.String(), nil
}

// checkEndpoint checks that endpoint is HOST:PORT with a port from 1 to
// 65535 and a host that is an IP address or a name, and returns the port.
func checkEndpoint(endpoint string) (uint16, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return 0, fmt.Errorf("wireguard: endpoint %q: want HOST:PORT, e.g. 192.168.1.20:%d or [fd00::20]:%d: %w", endpoint, DefaultPort, DefaultPort, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("wireguard: endpoint %q: port %q: want 1 to 65535", endpoint, port)
	}
	if host == "" || strings.ContainsAny(host, " \t\n/") {
		return 0, fmt.Errorf("wireguard: endpoint %q: want a host before the port", endpoint)
	}
	return uint16(p), nil
}

// serverUAPI returns the configuration-protocol text (device.IpcSet) that
// sets the server's key and replaces its peers with devs, each allowed only
// its own /32 and /128 as source addresses: WireGuard drops a packet whose
// inner source is not in its peer's AllowedIPs (cryptokey routing), so the
// source address names the device.
func serverUAPI(serverKey Key, devs []Device) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nreplace_peers=true\n", serverKey.hex())
	for _, d := range devs {
		b.WriteString(peerUAPI(d))
	}
	return b.String()
}

// peerUAPI returns the configuration-protocol lines that add device d.
func peerUAPI(d Device) string {
	return fmt.Sprintf("public_key=%s\nreplace_allowed_ips=true\nallowed_ip=%s\nallowed_ip=%s\n",
		d.PublicKey().hex(), netip.PrefixFrom(d.IPv4, 32), netip.PrefixFrom(d.IPv6, 128))
}
