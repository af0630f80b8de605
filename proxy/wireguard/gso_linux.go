package wireguard

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux sends a run of datagrams of one size to one address in one system
// call, segmented by the kernel (UDP GSO, the UDP_SEGMENT control message,
// udp(7), Linux 4.18): a TCP download through the tunnel is a stream of
// full-size packets to one device, which WireGuard encrypts a batch at a
// time (tunDevice.Read), and one sendto(2) per packet was the server's
// largest cost (BenchmarkBulk). A device on this machine whose socket
// asks for UDP GRO (wireguard-go's does) receives each run as one
// datagram.

const (
	// gsoMaxSegments is the most datagrams one send may carry
	// (UDP_MAX_SEGMENTS in the kernel's include/linux/udp.h).
	gsoMaxSegments = 64
	// gsoMaxBytes bounds a send's payload: an IPv4 datagram's largest,
	// 65535 less 20 bytes of IP and 8 of UDP header.
	gsoMaxBytes = 65535 - 20 - 8
)

// gsoSender sends batches on one socket.
type gsoSender struct {
	raw interface {
		Write(func(fd uintptr) bool) error
	}
	inet6 bool        // an AF_INET6 socket: IPv4 destinations as v4-mapped
	off   atomic.Bool // the kernel refused GSO once: datagram by datagram
	conn  *net.UDPConn
}

func newGSOSender(c *net.UDPConn) *gsoSender {
	g := &gsoSender{conn: c}
	raw, err := c.SyscallConn()
	if err != nil {
		g.off.Store(true)
		return g
	}
	g.raw = raw
	var sa unix.Sockaddr
	raw.Control(func(fd uintptr) { sa, err = unix.Getsockname(int(fd)) })
	_, g.inet6 = sa.(*unix.SockaddrInet6)
	if err != nil {
		g.off.Store(true)
	}
	return g
}

// send sends bufs to dst: each run of datagrams of one size (the last of
// a run may be shorter) in one system call, or one call per datagram when
// GSO is off or dst has a zone.
func (g *gsoSender) send(bufs [][]byte, dst netip.AddrPort) error {
	sa := g.sockaddr(dst)
	for len(bufs) > 0 {
		n := 1
		if sa != nil && !g.off.Load() {
			n = gsoRun(bufs)
		}
		if err := g.sendRun(bufs[:n], sa, dst); err != nil {
			return err
		}
		bufs = bufs[n:]
	}
	return nil
}

// gsoRun is how many of bufs, from the first, one GSO send may carry:
// datagrams of the first's size, then at most one shorter, within the
// kernel's limits.
func gsoRun(bufs [][]byte) int {
	size, total := len(bufs[0]), len(bufs[0])
	n := 1
	for n < len(bufs) && n < gsoMaxSegments && size > 0 {
		b := bufs[n]
		if len(b) > size || total+len(b) > gsoMaxBytes {
			break
		}
		total += len(b)
		n++
		if len(b) < size {
			break // a shorter one ends the run (udp(7), UDP_SEGMENT)
		}
	}
	return n
}

// sendRun sends one run: with UDP_SEGMENT when it holds more than one.
// If the kernel refuses GSO, it is turned off and the run sent again
// datagram by datagram.
func (g *gsoSender) sendRun(run [][]byte, sa unix.Sockaddr, dst netip.AddrPort) error {
	if len(run) == 1 || sa == nil {
		for _, b := range run {
			if _, err := g.conn.WriteToUDPAddrPort(b, dst); err != nil {
				return err
			}
		}
		return nil
	}
	oob := segmentCmsg(len(run[0]))
	var serr error
	err := g.raw.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), run, oob, sa, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil && gsoRefused(err) {
		g.off.Store(true)
		return g.sendRun(run, nil, dst) // sa nil: one by one
	}
	return err
}

// segmentCmsg is the UDP_SEGMENT control message: each datagram's size,
// a uint16 in host order.
func segmentCmsg(size int) []byte {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob
}

// gsoRefused reports whether err says the kernel or the route cannot
// segment UDP (no UDP_SEGMENT, or a device without checksum offload).
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP)
}

// sockaddr is dst for this socket, nil when GSO cannot send to it (a
// zone, or an IPv6 address on an IPv4 socket).
func (g *gsoSender) sockaddr(dst netip.AddrPort) unix.Sockaddr {
	a := dst.Addr()
	switch {
	case a.Zone() != "":
		return nil
	case g.inet6:
		return &unix.SockaddrInet6{Port: int(dst.Port()), Addr: a.As16()}
	case a.Unmap().Is4():
		return &unix.SockaddrInet4{Port: int(dst.Port()), Addr: a.Unmap().As4()}
	}
	return nil
}
