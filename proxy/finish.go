package proxy

import (
	"errors"

	"github.com/tlsresume/tlsresume/inspect"
)

// finish is the path's last step, deferred by serve for every ending: it
// closes both sides, completes the record with what was left to count,
// learns from it, decides its verdict, and publishes it. It and
// finishQUIC, for a QUIC connection relayed or blocked, are the places
// records are completed; publish is the one place they are published.
func (c *conn) finish() {
	s := c.s
	c.open()
	c.pre.discard()
	c.client.Close()
	ticketsKnown := false
	if c.up != nil {
		ticketsKnown = c.up.close()
	}
	r := c.rec
	if c.err != nil && r.Error == "" {
		r.Error = c.err.Error()
	}
	r.BytesUp = int64(c.replayed) + c.client.read.Load()
	r.BytesDown = c.client.written.Load()
	r.DurationMS = ms(s.cfg.Now().Sub(c.start))
	c.mu.Lock()
	if r.ClientLeg != nil {
		r.ClientLeg.StreamError = c.streamErr[sideClient]
	}
	if u := r.UpstreamLeg; u != nil {
		u.StreamError = c.streamErr[sideOrigin]
		u.ExtraHandshakes = c.extra
	}
	r.UserAgent = c.userAgent
	r.Requests, r.RequestCount = c.requests, c.requested
	c.requests, c.sealed = nil, true // a late answer writes nothing the record holds
	c.mu.Unlock()
	s.learned.closeOrigin(c, ticketsKnown)
	c.facts.ticketBefore = s.learned.ticketBefore(c)
	c.facts.notTLS = c.notTLS != nil
	c.facts.tlsToProxy = errors.Is(c.err, errTLSToProxy)
	s.publish(r, c.facts)
	s.untrack(c.client.Conn)
}

// finishQUIC completes the record of one QUIC connection of a flow
// (quicflow.go) once it ended: its counts, the TCP connection a blocked
// one fell back to, its verdict; and publishes it.
func (f *quicFlow) finishQUIC(q *quicConnRecord) {
	r := q.rec
	if r.ClientHello == nil && r.Error == "" {
		r.Error = "quic: the client's Initial packets held no complete ClientHello"
	}
	r.BytesUp, r.BytesDown = q.up, q.down
	r.DurationMS = ms(q.last.Sub(q.start))
	if q.blocked != nil {
		r.QUICFallback = f.s.fallbacks.done(q.blocked)
	}
	f.open(q)
	f.s.publish(r, verdictFacts{})
}

// publish decides a finished record's verdict and publishes it: the
// console's line, the record stream's close event (the --log file, the
// live view).
func (s *Server) publish(r *inspect.ConnRecord, facts verdictFacts) {
	r.Verdict = decide(r, facts)
	r = r.Capped() // what peers sent is bounded before the console, the log and the view see it
	s.logRecord(r)
	s.events.publish(inspect.EventClose, r)
}
