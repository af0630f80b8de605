package proxy

import (
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// quicFlow is one QUIC flow through the proxy (HandleQUIC): its datagrams
// read as they pass by an inspect.QUICFlow, and the record of the QUIC
// connection on it, written as the reader hands on what it learned. Both
// directions' goroutines feed it, under mu.
type quicFlow struct {
	s        *Server
	a        QUICArrival
	blocking bool
	idle     *idler

	mu   sync.Mutex
	read inspect.QUICFlow
	cur  *quicConnRecord // the connection the flow carries; nil before the first Initial
}

// quicConnRecord is one QUIC connection of a flow, from its client's first
// Initial: its record as it is written, and what is counted for it.
type quicConnRecord struct {
	rec         *inspect.ConnRecord
	start, last time.Time // its first and latest datagrams
	up, down    int64     // datagram bytes from the client, from the origin
	opened      bool      // its open event was published
	blocked     *blockedQUIC
}

// passthroughQUIC is a relayed QUIC connection's passthrough: why its
// bytes went untouched.
const passthroughQUIC = "QUIC relayed untouched (--quic pass)"

func (s *Server) newQUICFlow(a QUICArrival) *quicFlow {
	f := &quicFlow{s: s, a: a, blocking: s.cfg.QUIC == QUICBlock}
	client := ""
	if ra := a.Client.RemoteAddr(); ra != nil {
		client = ra.String()
	}
	f.read = inspect.QUICFlow{
		Source: a.Source, ClientAddr: client, ServerAddr: a.Dst.String(),
		History: s.learned.sessionIDs, Started: f.started, Emit: f.note,
	}
	timeout := s.cfg.QUICIdleTimeout
	if f.blocking {
		timeout = inspect.QUICFallbackWindow
	}
	f.idle = startIdler(a.Client, timeout)
	return f
}

// client reads a datagram the client sent, before the proxy relays or
// drops it.
func (f *quicFlow) client(b []byte) {
	f.idle.touch()
	now := f.s.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read.Client(b, now, 0)
	if q := f.cur; q != nil {
		q.up += int64(len(b))
		q.last = now
		if q.blocked != nil {
			f.s.fallbacks.seen(q.blocked, now)
		}
	}
}

// server reads a datagram the origin sent, before it is relayed to the
// client.
func (f *quicFlow) server(b []byte) {
	f.idle.touch()
	now := f.s.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read.Server(b, now, 0)
	if q := f.cur; q != nil {
		q.down += int64(len(b))
		q.last = now
	}
}

// started begins the record of a QUIC connection the client's Initial
// starts at t, once the one before it on the flow was published. mu is
// held (the reader calls it from client).
func (f *quicFlow) started(t time.Time) {
	if f.cur != nil {
		f.finishQUIC(f.cur)
	}
	q := &quicConnRecord{start: t, last: t}
	q.rec = &inspect.ConnRecord{
		ID: f.s.ids.next(), Target: f.a.Dst.String(),
		Record: inspect.Record{V: inspect.SchemaVersion, Time: t, Source: f.a.Source, Transport: inspect.TransportNameQUIC,
			ClientAddr: f.read.ClientAddr, ServerAddr: f.read.ServerAddr, Device: f.a.Device, DNSName: f.a.DNSName},
	}
	if f.blocking {
		q.blocked = f.s.fallbacks.block(f.a.Device, f.a.Dst, q.rec.ID, t)
	} else {
		q.rec.Passthrough = passthroughQUIC
	}
	f.cur = q
}

// note takes a record the reader handed on (a hello, with the origin's
// answer once it came) into the connection's record: the first hello,
// the answer that ended the handshake (a HelloRetryRequest's answer is
// replaced by the next), the QUIC facts of the latest hello (after a
// Retry: the one the origin answered). The first one publishes the open
// event. mu is held.
func (f *quicFlow) note(r *inspect.Record) {
	q := f.cur
	if q == nil {
		return // cannot happen: the reader starts a connection before its records
	}
	rec := q.rec
	if rec.ClientHello == nil && r.ClientHello != nil {
		rec.ClientHello, rec.SNI = r.ClientHello, r.SNI
	}
	if r.ServerHello != nil && (rec.ServerHello == nil || rec.ServerHello.HRR) {
		rec.ServerHello = r.ServerHello
	}
	rec.QUIC = r.QUIC
	rec.EarlyDataSent = rec.EarlyDataSent || r.EarlyDataSent
	if rec.Error == "" {
		rec.Error = r.Error
	}
	f.open(q)
}

// open publishes a connection's open event, once: its record as it
// stands.
func (f *quicFlow) open(q *quicConnRecord) {
	if q.opened {
		return
	}
	q.opened = true
	snap := *q.rec
	f.s.events.publish(inspect.EventOpen, snap.Capped())
}

// close ends the flow: the reader hands on what it held, and the last
// connection's record is published.
func (f *quicFlow) close() {
	f.idle.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.read.Close()
	if f.cur != nil {
		f.finishQUIC(f.cur)
		f.cur = nil
	}
}
