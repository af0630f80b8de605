package proxy

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The gate admits client connections on every listener (CONNECT,
// transparent, SNI, HTTP), at accept, and those HandleConn is given (by
// --max-conns only), before a connection takes a slot:
//   - a peer outside --allow is closed at once;
//   - at --max-conns, the oldest connection that has not yet sent a
//     complete hello or HTTP request is evicted for the newcomer (idle
//     sockets are cheap to make and must not starve real clients); a
//     connection that sent one keeps its slot;
//   - when every slot is held by such a connection, the newcomer is refused
//     at once: "503" with a one-line reason on the HTTP listeners, a close
//     on the others. Nobody waits silently.
//
// Each refusal and eviction is counted (Admission, /metrics) and said on
// the console, at most once a second per reason.

// Admission counts what the gate turned away.
type Admission struct {
	NotAllowed uint64 `json:"not_allowed"` // peers outside --allow, closed at accept
	AtCap      uint64 `json:"at_cap"`      // refused: every slot held by a connection that sent its hello or request
	Evicted    uint64 `json:"evicted"`     // closed before their hello or request to make room
}

// errEvicted is the record's error for a connection the gate evicted.
var errEvicted = errors.New("evicted: --max-conns was reached and this connection had sent no complete hello or request yet")

type gate struct {
	s       *Server
	max     int
	mu      sync.Mutex
	open    int
	waiting list.List // *slot not yet established, oldest first

	notAllowed, atCap, evicted atomic.Uint64
	said                       [3]atomic.Int64 // last console line per reason (UnixNano)
}

// Reasons a connection is turned away, for the console's rate limit.
const (
	turnedNotAllowed = iota
	turnedAtCap
	turnedEvicted
)

// slot is one admitted connection's place under the cap.
type slot struct {
	g        *gate
	elem     *list.Element // in g.waiting until established
	released bool
	evicted  atomic.Bool
}

func newGate(s *Server, max int) *gate { return &gate{s: s, max: max} }

// admit takes a slot for a connection, evicting the oldest waiting one at
// the cap; nil when none is free.
func (g *gate) admit(c net.Conn) *slot {
	g.mu.Lock()
	var victim *slotConn
	if g.open >= g.max {
		front := g.waiting.Front()
		if front == nil {
			g.mu.Unlock()
			return nil
		}
		victim = front.Value.(*slotConn)
		g.releaseLocked(victim.slot)
		victim.slot.evicted.Store(true)
	}
	sl := &slot{g: g}
	g.open++
	g.mu.Unlock()
	if victim != nil {
		g.evicted.Add(1)
		g.say(turnedEvicted, victim.RemoteAddr().String(), "evict connection: --max-conns reached and it sent no hello or request yet")
		victim.Conn.Close()
	}
	return sl
}

func (g *gate) releaseLocked(sl *slot) {
	if sl.released {
		return
	}
	sl.released = true
	g.open--
	if sl.elem != nil {
		g.waiting.Remove(sl.elem)
		sl.elem = nil
	}
}

// say logs a refusal, at most once a second per reason.
func (g *gate) say(reason int, client, msg string) {
	now := time.Now().UnixNano()
	last := g.said[reason].Load()
	if now-last < int64(time.Second) || !g.said[reason].CompareAndSwap(last, now) {
		return
	}
	g.s.cfg.Log.Warn().Str("client", client).Int("max_conns", g.max).
		Uint64("not_allowed_total", g.notAllowed.Load()).Uint64("at_cap_total", g.atCap.Load()).
		Uint64("evicted_total", g.evicted.Load()).Msg(msg)
}

func (g *gate) admission() Admission {
	return Admission{NotAllowed: g.notAllowed.Load(), AtCap: g.atCap.Load(), Evicted: g.evicted.Load()}
}

// Admission returns what the gate turned away since start.
func (s *Server) Admission() Admission { return s.gate.admission() }

// slotConn is an admitted connection; Close gives its slot back.
type slotConn struct {
	net.Conn
	slot   *slot
	closed sync.Once
}

// NetConn returns the accepted connection (SO_ORIGINAL_DST needs the
// *net.TCPConn).
func (c *slotConn) NetConn() net.Conn { return c.Conn }

func (c *slotConn) Close() error {
	c.closed.Do(func() {
		g := c.slot.g
		g.mu.Lock()
		g.releaseLocked(c.slot)
		g.mu.Unlock()
	})
	return c.Conn.Close()
}

// established: the connection sent a complete hello or request, so it
// keeps its slot from now on.
func (c *slotConn) established() {
	g := c.slot.g
	g.mu.Lock()
	if c.slot.elem != nil {
		g.waiting.Remove(c.slot.elem)
		c.slot.elem = nil
	}
	g.mu.Unlock()
}

// establish marks c, when the gate admitted it, as having sent its hello
// or request; it says whether the gate evicted it first.
func establish(c net.Conn) (evicted bool) {
	sc, ok := admitted(c)
	if !ok {
		return false
	}
	sc.established()
	return sc.slot.evicted.Load()
}

// wasEvicted says whether the gate evicted c.
func wasEvicted(c net.Conn) bool {
	sc, ok := admitted(c)
	return ok && sc.slot.evicted.Load()
}

// admitted finds the gate's slotConn under c's wrappers (NetConn).
func admitted(c net.Conn) (*slotConn, bool) {
	for {
		switch w := c.(type) {
		case *slotConn:
			return w, true
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil, false
		}
	}
}

// gateListener admits through the gate; refusal writes refuse (nil: close).
type gateListener struct {
	net.Listener
	g      *gate
	refuse []byte
}

// listener wraps ln; httpRefusal says whether refused peers get a 503.
func (g *gate) listener(ln net.Listener, httpRefusal bool) net.Listener {
	gl := &gateListener{Listener: ln, g: g}
	if httpRefusal {
		body := "tlsresume: too many open connections (--max-conns); try again shortly.\n"
		gl.refuse = fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Connection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	return gl
}

func (l *gateListener) Accept() (net.Conn, error) {
	g := l.g
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(raw.RemoteAddr().String())
		if err != nil || !g.s.allowed(ap.Addr().Unmap()) {
			g.notAllowed.Add(1)
			g.say(turnedNotAllowed, raw.RemoteAddr().String(), "refuse connection: client not in --allow")
			raw.Close()
			continue
		}
		sl := g.admit(raw)
		if sl == nil {
			g.atCap.Add(1)
			g.say(turnedAtCap, raw.RemoteAddr().String(), "refuse connection: --max-conns reached, every slot held by a client that sent its hello or request")
			if l.refuse != nil {
				raw.SetWriteDeadline(time.Now().Add(time.Second))
				raw.Write(l.refuse)
				go lingerClose(raw, time.Second)
			} else {
				raw.Close()
			}
			continue
		}
		return g.hold(raw, sl), nil
	}
}

// hold makes an admitted connection one that waits for its hello or
// request, the first the cap evicts until it sends one.
func (g *gate) hold(raw net.Conn, sl *slot) *slotConn {
	sc := &slotConn{Conn: raw, slot: sl}
	g.mu.Lock()
	if !sl.released {
		sl.elem = g.waiting.PushBack(sc)
	}
	g.mu.Unlock()
	return sc
}

type connKey struct{}

// withConn keeps an HTTP request's connection in its context
// (http.Server.ConnContext), for establishRequest.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// establishRequest marks the connection that carried r as established.
func establishRequest(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		establish(c)
	}
}

// CloseWrite half-closes the accepted connection.
func (c *slotConn) CloseWrite() error { return closeWrite(c.Conn) }

// track registers a hijacked connection so Shutdown can wait for it and,
// past its grace period, close it.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.active[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.active, c)
	s.mu.Unlock()
	s.wg.Done()
}
