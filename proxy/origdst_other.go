//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
)

// originalDst needs Linux's SO_ORIGINAL_DST; on macOS, pf's rdr-to would
// need DIOCNATLOOK, which tlsresume does not implement yet.
func originalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("transparent mode needs Linux (SO_ORIGINAL_DST)")
}
