package proxy

import (
	"net"
	"sync/atomic"
	"time"
)

// pipe copies between a and b both ways until both directions end, then
// closes both. When one direction ends, the other is half-closed and given
// halfClose of silence to finish, so a peer that never closes its side
// cannot hold the connection open forever while a long response still
// flows. tap, when set, sees every chunk (fromClient says which way: a is
// the client side).
func pipe(a, b net.Conn, halfClose time.Duration, tap func(fromClient bool, p []byte)) {
	var ended atomic.Bool
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, fromClient bool) {
		buf := make([]byte, 32<<10)
		for {
			if ended.Load() {
				src.SetReadDeadline(time.Now().Add(halfClose))
			}
			n, err := src.Read(buf)
			if n > 0 {
				if tap != nil {
					tap(fromClient, buf[:n])
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		closeWrite(dst)
		if !ended.Swap(true) {
			// Wake the other direction so it starts its half-close timer.
			dst.SetReadDeadline(time.Now().Add(halfClose))
		}
		done <- struct{}{}
	}
	go cp(a, b, false)
	go cp(b, a, true)
	<-done
	<-done
	a.Close()
	b.Close()
}
