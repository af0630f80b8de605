// Package wgpeer is the device's side of tlsresume's WireGuard server, in
// this process: a WireGuard client configured from the wg-quick text that
// `tlsresume wireguard config` prints (ParseConfig, Start), as a phone's
// app is, whose DialTCP, DialUDP, DialContext and Resolver reach through
// the tunnel. wireguard-go speaks the protocol over a UDP socket and
// gVisor's netstack is the client's TCP/IP stack, so no root and no TUN
// device is needed.
//
// It is for tests (tlstest.StartWGPeer wraps it) and for cmd/loadbench,
// which measures the proxy through the tunnel. Unlike wireguard-go's own
// tun/netstack it accepts answers from loopback addresses, so that a peer
// reaches a loopback origin through a server run with --wireguard-local.
//
// It is a package of its own, not part of package wireguard, because
// package wireguard's tests use inspect/tlstest, which uses this one. It
// imports golang.zx2c4.com/wireguard and gvisor.dev/gvisor as package
// wireguard does, and of tlsresume's only nettun, the tun device both
// sides share.
package wgpeer
