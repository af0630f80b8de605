package proxy

import (
	"net"
	"net/http"
)

// upstreamLeg is how a connection reaches its origin, behind one seam:
// a connection and handshake of its own (pairLeg, --upstream-reuse pair,
// pair.go) or the pool's connections (poolLeg, poolleg.go). open has already
// run when a leg is handed out; its record is c.rec.UpstreamLeg, written
// as its facts arise.
type upstreamLeg interface {
	// version is the TLS version the origin negotiated on this
	// connection's own upstream handshake, once it is complete; else 0.
	version() uint16
	// issuesTickets says whether the origin issued a ticket on this
	// connection's own upstream handshake, when its handshake says so
	// before the client is answered (known): a TLS 1.2 NewSessionTicket
	// comes inside the handshake (RFC 5077, Section 3.3), a TLS 1.3 one
	// after it, and an answer ahead or the pool's shows no handshake yet.
	issuesTickets() (issued, known bool)
	// settle waits for an upstream handshake still under way (the client
	// was answered ahead of it) and returns how it ended.
	settle() error
	// transport is what relays the connection's HTTP requests to the
	// origin.
	transport() (http.RoundTripper, error)
	// stream is an upstream connection to relay bytes to, for a client
	// that speaks another protocol than HTTP.
	stream() (net.Conn, error)
	// probe gives the leg up before the client's handshake: the client is
	// passed through instead. What the origin saw stays in the record.
	probe() (ticketsKnown bool)
	// close ends what the leg holds (the pool keeps its connections) and
	// writes its last facts in the record; it says whether every ticket the
	// origin sent was seen (TLS 1.3 tickets follow the handshake).
	close() (ticketsKnown bool)
}

// openUpstream is the path's fourth step: the connection's upstream leg,
// and the answer its client leg mirrors (c.mirror). The pool carries the
// requests of an origin it knows; every other connection makes its own
// upstream connection. A known answer lets the client be answered while
// the upstream handshake runs (pair.go, --mirror overlap).
func (c *conn) openUpstream() error {
	if c.s.pool != nil {
		up, err := c.s.pool.open(c)
		c.up = up
		return err
	}
	up, err := openPair(c, c.s.cfg.Mirror == MirrorOverlap, true)
	c.up = up
	return err
}

// passThroughAfterAll is the upstream step's last question, once the
// upstream leg knows the origin's version: a client that resumes only by
// session ID, of an origin that speaks TLS 1.2, is passed through after
// all (sessionIDReason). The upstream handshake made for
// interception stays in the record as a probe (the origin saw it, and the
// upstream cache used it); the client's bytes go to the origin on a new
// connection.
func (c *conn) passThroughAfterAll() bool {
	why := c.sessionIDReason(c.up.version())
	if why == "" {
		return false
	}
	c.rec.Passthrough = why
	c.s.learned.closeOrigin(c, c.up.probe())
	c.up = nil
	return true
}
