package proxy

import (
	"net/netip"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// fallbacks pairs each QUIC connection that --quic block dropped with the
// TCP connection the app fell back to: the first TCP connection of the
// same device to the same address, port 443, that arrives while the QUIC
// connection is blocked or within inspect.QUICFallbackWindow of its last
// datagram. The QUIC connection's record names the TCP one
// (quic_fallback.tcp_conn), and the TCP one's names the QUIC one
// (after_quic): each writes its own fact as it arises.
type fallbacks struct {
	mu      sync.Mutex
	blocked map[fallbackKey][]*blockedQUIC // oldest first
}

// fallbackKey is a device and the address its QUIC went to.
type fallbackKey struct {
	device string
	addr   netip.Addr
}

// blockedQUIC is one blocked QUIC connection waiting for its fallback.
type blockedQUIC struct {
	key         fallbackKey
	id          string
	start, last time.Time // its first and its latest datagram
	tcpConn     string
	tcpAt       time.Time
}

// block registers a QUIC connection of device to dst, blocked from start
// on, until done.
func (fb *fallbacks) block(device string, dst netip.AddrPort, id string, start time.Time) *blockedQUIC {
	b := &blockedQUIC{key: fallbackKey{device, dst.Addr().Unmap()}, id: id, start: start, last: start}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.blocked == nil {
		fb.blocked = map[fallbackKey][]*blockedQUIC{}
	}
	fb.blocked[b.key] = append(fb.blocked[b.key], b)
	return b
}

// seen notes a datagram of a blocked connection, dropped at t.
func (fb *fallbacks) seen(b *blockedQUIC, t time.Time) {
	fb.mu.Lock()
	b.last = t
	fb.mu.Unlock()
}

// follow is asked by each TCP connection of a device to port 443 as it
// arrives at t: it returns the blocked QUIC connection it is the fallback
// of (the oldest one still waiting for one), naming the TCP connection id
// in it, or "".
func (fb *fallbacks) follow(device string, dst netip.AddrPort, id string, t time.Time) string {
	if device == "" || dst.Port() != 443 {
		return ""
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	for _, b := range fb.blocked[fallbackKey{device, dst.Addr().Unmap()}] {
		if b.tcpConn == "" && !t.Before(b.start) && !t.After(b.last.Add(inspect.QUICFallbackWindow)) {
			b.tcpConn, b.tcpAt = id, t
			return b.id
		}
	}
	return ""
}

// done ends the wait of b and returns what became of it, for its record.
func (fb *fallbacks) done(b *blockedQUIC) *inspect.QUICFallback {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	list := fb.blocked[b.key]
	for i, o := range list {
		if o == b {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(fb.blocked, b.key)
	} else {
		fb.blocked[b.key] = list
	}
	out := &inspect.QUICFallback{Blocked: true, TCPConn: b.tcpConn}
	if b.tcpConn != "" {
		out.AfterMS = ms(b.tcpAt.Sub(b.start))
	}
	return out
}
