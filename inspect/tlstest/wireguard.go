package tlstest

import (
	"testing"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// WGConf is a wg-quick configuration for one peer, as a WireGuard app
// reads it from a file or a QR code (wgpeer.Config).
type WGConf = wgpeer.Config

// ParseWGConf reads the keys a wg-quick file for one peer may hold
// (Interface: PrivateKey, Address, DNS; Peer: PublicKey, Endpoint,
// AllowedIPs), refusing any other, as an app would fail on a misspelt one
// (wgpeer.ParseConfig).
func ParseWGConf(text string) (WGConf, error) { return wgpeer.ParseConfig(text) }

// WGPeer is a WireGuard client in this process, as a phone's app is:
// wgpeer.Peer, whose DialTCP, DialUDP and Resolver reach through the
// tunnel, loopback destinations included.
type WGPeer struct {
	*wgpeer.Peer
	Conf WGConf
}

// StartWGPeer starts a peer for conf (wg-quick text) that reaches its
// server at endpoint (e.g. the loopback address a test server listens on,
// rather than the LAN address the text names), or ends t. It stops when t
// ends, or at Close.
func StartWGPeer(t testing.TB, conf, endpoint string) *WGPeer {
	t.Helper()
	p, err := wgpeer.Start(conf, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &WGPeer{Peer: p, Conf: p.Config()}
}
