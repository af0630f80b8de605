// Package wgsource makes the devices on tlsresume's WireGuard server
// (package wireguard) a source of the proxy: `tlsresume proxy --wireguard`.
// A phone installs a WireGuard configuration and every connection it makes
// arrives here with its original destination and its device's name.
//
// It owns what becomes of each of them, in its own files:
//
//   - TCP (source.go): a connection to the tunnel's DNS address, port 53,
//     is answered here; every other one is handed to the proxy
//     (proxy.Server.HandleConn) with source wireguard, the device, and the
//     name the device looked up for the address (dns_name), and takes the
//     proxy's one main path as a transparent connection does: any port,
//     TLS intercepted or passed through by the same rules, anything else
//     relayed untouched and recorded. A client that sends nothing for a
//     second (but on ports 443 and 80) is relayed untouched: its server
//     may be one that speaks first.
//   - What a device may reach (dest.go): never tlsresume's own listeners,
//     the tunnel's own addresses (but its DNS) or an address that is no
//     destination; this machine's own addresses (loopback, link-local,
//     its interfaces') only with Config.Local (--wireguard-local). A TCP
//     connection refused gets a reset and a record saying why.
//   - DNS (source.go): queries to the tunnel's DNS address (10.73.0.1,
//     fd74:6c73:7265::1; UDP and TCP) are forwarded to Config.DNSUpstream
//     by a proxy/dns forwarder, which remembers per device the name each
//     answered address was for. A UDP flow ends soon after its answers
//     (2s without a query), not at the idle timeout.
//   - QUIC and other UDP (udp.go): a flow to port 443 (QUIC) goes to the
//     proxy (proxy.Server.HandleQUIC, through Config.QUIC), which relays
//     it untouched or blocks it (--quic pass|block) and records each QUIC
//     connection on it, with the device and dns_name. Every other flow is
//     relayed to its destination until it is idle, and makes no record.
//     Flows are counted per device (Stats).
//   - What the live view's device page shows (stats.go): each device's
//     counters (Stats), its configuration (DeviceConfig, and
//     wireguard.QRTerminal or QRPNG of it) and the endpoint chosen.
//
// It logs only through the zerolog.Logger it is given.
package wgsource
