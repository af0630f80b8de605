package proxy

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// errIdle ends a relay in which neither side sent a byte for the idle
// timeout.
var errIdle = errors.New("closed: no bytes either way for the idle timeout (--idle-timeout)")

// pipe copies between a and b both ways until both directions end, then
// closes both. When one direction ends, the other is half-closed and given
// halfClose of silence to finish, so a peer that never closes its side
// cannot hold the connection open forever while a long response still
// flows. When no byte moves either way for idle (0: never), both end at
// once and pipe returns errIdle. tap, when set, sees every chunk
// (fromClient says which way: a is the client side).
func pipe(a, b net.Conn, idle, halfClose time.Duration, tap func(fromClient bool, p []byte)) error {
	var ended, idled atomic.Bool
	var last atomic.Int64 // when the last byte moved, either way (UnixNano)
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn, fromClient bool) {
		buf := make([]byte, 32<<10)
		for {
			switch {
			case ended.Load():
				src.SetReadDeadline(time.Now().Add(halfClose))
			case idle > 0:
				src.SetReadDeadline(time.Unix(0, last.Load()).Add(idle))
			}
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if tap != nil {
					tap(fromClient, buf[:n])
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				if idle > 0 && !ended.Load() && !idled.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
					if time.Since(time.Unix(0, last.Load())) < idle {
						continue // the other direction moved meanwhile
					}
					idled.Store(true)
					a.SetReadDeadline(time.Now())
					b.SetReadDeadline(time.Now())
				}
				break
			}
		}
		if idled.Load() {
			done <- struct{}{}
			return
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
	if idled.Load() {
		return errIdle
	}
	return nil
}
