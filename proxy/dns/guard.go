package dns

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// The guard decides, before a query is parsed, whether its client is
// served at all:
//   - a client outside Config.Allow gets nothing: its UDP datagrams are
//     dropped unread and its TCP connections closed at accept, so the
//     server is no open resolver and reflects nothing to a spoofed address
//     outside the list;
//   - a client inside gets a token bucket (Config.RateLimit a second,
//     bursts of Config.RateBurst); a query over it is dropped (UDP) or ends
//     its connection (TCP). This bounds what a spoofed address inside the
//     list can be sent: at most RateLimit answers a second of at most 1232
//     bytes each over UDP (ednsSize).
//
// Buckets are kept for at most Config.MaxClients clients, the one seen
// longest ago forgotten first. Each refusal is counted (Server.Refusals) and
// logged at warn, at most once a second per reason.

// Refusals counts the queries the server turned away unanswered.
type Refusals struct {
	NotAllowed  uint64 `json:"not_allowed"`  // UDP queries and TCP connections from outside Allow
	RateLimited uint64 `json:"rate_limited"` // queries over their client's rate (UDP dropped, TCP closed)
}

// Reasons a query is refused, for the log's rate limit.
const (
	refusedNotAllowed = iota
	refusedRateLimited
)

type guard struct {
	allow []netip.Prefix // empty: loopback only
	limit rate.Limit     // < 0: no limit
	burst int
	max   int
	now   func() time.Time
	log   zerolog.Logger

	mu      sync.Mutex
	clients map[netip.Addr]*list.Element
	seen    list.List // of *bucket, most recently seen first

	notAllowed, rateLimited atomic.Uint64
	said                    [2]atomic.Int64 // last log line per reason (UnixNano)
}

// bucket is one client's token bucket.
type bucket struct {
	addr netip.Addr
	lim  *rate.Limiter
}

func newGuard(cfg Config) *guard {
	return &guard{
		allow:   cfg.Allow,
		limit:   rate.Limit(cfg.RateLimit),
		burst:   cfg.RateBurst,
		max:     cfg.MaxClients,
		now:     cfg.Now,
		log:     cfg.Log,
		clients: make(map[netip.Addr]*list.Element),
	}
}

// allowed reports whether ip (unmapped, without zone) is in Allow.
func (g *guard) allowed(ip netip.Addr) bool {
	if len(g.allow) == 0 {
		return ip.IsLoopback()
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit reports whether a query from client, read over network, is
// served: its client is in Allow and within its rate. A refusal is
// counted and logged.
func (g *guard) admit(client net.Addr, network string) bool {
	ip := ipOf(client)
	if !g.allowed(ip) {
		g.refuse(refusedNotAllowed, ip, network)
		return false
	}
	if !g.take(ip) {
		g.refuse(refusedRateLimited, ip, network)
		return false
	}
	return true
}

// take spends one of ip's tokens, reporting whether it had one.
func (g *guard) take(ip netip.Addr) bool {
	if g.limit < 0 {
		return true
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var b *bucket
	if el, ok := g.clients[ip]; ok {
		g.seen.MoveToFront(el)
		b = el.Value.(*bucket)
	} else {
		if g.seen.Len() >= g.max {
			old := g.seen.Remove(g.seen.Back()).(*bucket)
			delete(g.clients, old.addr)
		}
		b = &bucket{addr: ip, lim: rate.NewLimiter(g.limit, g.burst)}
		g.clients[ip] = g.seen.PushFront(b)
	}
	return b.lim.AllowN(now, 1)
}

// tracked is how many clients have a bucket now.
func (g *guard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen.Len()
}

// refuse counts a refusal and logs it, at most once a second per reason.
func (g *guard) refuse(reason int, ip netip.Addr, network string) {
	msg := "drop dns query: client not in --allow"
	if reason == refusedNotAllowed {
		g.notAllowed.Add(1)
	} else {
		g.rateLimited.Add(1)
		msg = "drop dns query: client over its rate limit"
	}
	now := g.now().UnixNano()
	last := g.said[reason].Load()
	if now-last < int64(time.Second) || !g.said[reason].CompareAndSwap(last, now) {
		return
	}
	g.log.Warn().Stringer("client", ip).Str("net", network).
		Uint64("not_allowed_total", g.notAllowed.Load()).Uint64("rate_limited_total", g.rateLimited.Load()).Msg(msg)
}

func (g *guard) refusals() Refusals {
	return Refusals{NotAllowed: g.notAllowed.Load(), RateLimited: g.rateLimited.Load()}
}

// ipOf returns a client address's IP, unmapped and without zone (a zoned
// address matches no prefix: netip.Prefix.Contains).
func ipOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap().WithZone("")
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

// allowListener closes, at accept, TCP connections from outside Allow.
type allowListener struct {
	net.Listener
	g *guard
}

func (l allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := ipOf(c.RemoteAddr())
		if l.g.allowed(ip) {
			return c, nil
		}
		l.g.refuse(refusedNotAllowed, ip, "tcp")
		c.Close()
	}
}
