//go:build !linux

package wireguard

import (
	"net"
	"net/netip"
)

// gsoSender sends datagram by datagram: UDP GSO is Linux's (gso_linux.go).
type gsoSender struct{ conn *net.UDPConn }

func newGSOSender(c *net.UDPConn) *gsoSender { return &gsoSender{conn: c} }

func (g *gsoSender) send(bufs [][]byte, dst netip.AddrPort) error {
	for _, b := range bufs {
		if _, err := g.conn.WriteToUDPAddrPort(b, dst); err != nil {
			return err
		}
	}
	return nil
}
