package proxy

import (
	"errors"

	"github.com/tlsresume/tlsresume/inspect"
)

// finish is the path's last step, deferred by serve for every ending: it
// closes both sides, completes the record with what was left to count,
// learns from it, decides its verdict, and publishes it. It is the one
// place a record is completed and published.
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
	r.Verdict = decide(r, c.facts)
	r = r.Capped() // what peers sent is bounded before the console, the log and the view see it
	s.logRecord(r)
	s.events.publish(inspect.EventClose, r)
	s.untrack(c.client.Conn)
}
