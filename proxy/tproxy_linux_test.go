package proxy

import (
	"context"
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenTransparent: the listener carries IP_TRANSPARENT (IPv4) or
// IPV6_TRANSPARENT (IPv6 and dual-stack), or, without the privilege, the
// error says it could not (ErrNoTransparent) so the caller can fall back.
func TestListenTransparent(t *testing.T) {
	for _, tt := range []struct {
		addr       string
		level, opt int
	}{
		{"127.0.0.1:0", unix.SOL_IP, unix.IP_TRANSPARENT},
		{"[::1]:0", unix.SOL_IPV6, unix.IPV6_TRANSPARENT},
		{"0.0.0.0:0", unix.SOL_IPV6, unix.IPV6_TRANSPARENT}, // Go listens dual-stack on AF_INET6
	} {
		t.Run(tt.addr, func(t *testing.T) {
			ln, err := ListenTransparent(context.Background(), tt.addr)
			if errors.Is(err, ErrNoTransparent) && errors.Is(err, unix.EPERM) {
				t.Skipf("no CAP_NET_ADMIN or CAP_NET_RAW: %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rc, err := ln.(*net.TCPListener).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var v int
			var gerr error
			rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), tt.level, tt.opt) })
			if gerr != nil || v != 1 {
				t.Errorf("getsockopt on %s: %d, %v; want 1", ln.Addr(), v, gerr)
			}
		})
	}
}
