package proxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// originalDst returns where a redirected TCP connection was going before
// iptables/nft REDIRECT sent it here: getsockopt SO_ORIGINAL_DST (IPv4,
// linux/netfilter_ipv4.h) or IP6T_SO_ORIGINAL_DST (IPv6,
// linux/netfilter_ipv6/ip6_tables.h), both option 80, answered from the
// conntrack entry.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	if u, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = u.NetConn() // the gate's slotConn
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	local, _ := netip.ParseAddrPort(tc.LocalAddr().String())
	var dst netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		if local.Addr().Unmap().Is4() {
			dst, serr = getOrigDst(fd, unix.SOL_IP, 16)
		} else {
			dst, serr = getOrigDst(fd, unix.SOL_IPV6, 28)
		}
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return dst, serr
}

// getOrigDst reads a sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes).
func getOrigDst(fd uintptr, level, size int) (netip.AddrPort, error) {
	const soOriginalDst = 80 // SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST
	var buf [28]byte
	l := uint32(size)
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, uintptr(level), soOriginalDst,
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return netip.AddrPort{}, errno
	}
	port := binary.BigEndian.Uint16(buf[2:4])
	if size == 16 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port), nil
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])).Unmap(), port), nil
}
