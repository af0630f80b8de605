package proxy

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setTransparent is ListenTransparent's net.ListenConfig Control: it sets
// IP_TRANSPARENT, or IPV6_TRANSPARENT on an IPv6 socket, without which
// TPROXY drops a connection instead of delivering it (ip(7), ipv6(7); both
// set the same socket flag, so a dual-stack socket takes IPv4 too). It
// needs CAP_NET_ADMIN or CAP_NET_RAW (net/ipv4/ip_sockglue.c).
func setTransparent(network, _ string, rc syscall.RawConn) error {
	level, opt, name := unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT"
	if strings.HasSuffix(network, "6") {
		level, opt, name = unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT"
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("%w: setsockopt %s: %w", ErrNoTransparent, name, serr)
	}
	return nil
}
