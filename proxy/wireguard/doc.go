// Package wireguard is tlsresume's WireGuard server: a phone or tablet
// installs a WireGuard configuration, and every TCP connection and UDP flow
// it makes is handed to the proxy with its original destination and the
// name of the device, as a transparent connection is. It runs entirely in
// user space: golang.zx2c4.com/wireguard speaks the protocol over a UDP
// socket, and gVisor's netstack is the TCP/IP stack behind it, so no root,
// no TUN device and no routing change is needed on the laptop.
//
// It owns three things, each in its own files:
//
//   - The keys (keys.go, store.go, files.go): the server key and one key
//     pair and pair of tunnel addresses per named device, created on first
//     use in the wireguard folder of tlsresume's CA directory, every key
//     file 0600 and refused when others can read it.
//   - What a person installs (wgquick.go, endpoint.go, qr.go): the
//     wg-quick text for a device, the laptop's LAN address to put in it,
//     and that text as a QR code for a terminal or as a PNG.
//   - The server (config.go, server.go, tun.go, bind.go, tcp.go, udp.go,
//     stats.go): a WireGuard device whose packets go into a netstack that
//     accepts every destination address (promiscuous, spoofing), with TCP
//     and UDP forwarders that deliver each connection to Config.HandleTCP
//     and each flow to Config.HandleUDP. ICMP echo is answered for the
//     server's own addresses and dropped for any other; nothing leaves the
//     netstack except through the handlers.
//
// The tunnel's address plan is fixed (addr.go): the server is 10.73.0.1 and
// fd74:6c73:7265::1 (also the devices' DNS server), devices get .2 upwards
// and the same host number in the IPv6 /64.
//
// It and its sub-package wgpeer (the device's side, in this process, for
// tests and cmd/loadbench) are the only packages that import
// golang.zx2c4.com/wireguard and gvisor.dev/gvisor, so either can be
// replaced in one place. It logs only through the zerolog.Logger it is
// given.
package wireguard
