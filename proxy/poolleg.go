package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// poolLeg is --upstream-reuse pool's upstream leg: a client connection's
// requests ride the pool's connections to its origin. When the pool has
// handshaken with the origin, the connection makes no upstream handshake
// of its own at first: its client leg mirrors the pool's last handshake
// (placeholder), and its record takes the first handshake the pool makes
// on its behalf, if any. Otherwise it makes its own (own), which the pool
// adopts with its first request. Origins that ask for client certificates
// are paired as usual: identities are never pooled across client
// connections.
type poolLeg struct {
	c       *conn
	po      *pooledOrigin // the origin in the pool, once known
	own     *pairLeg      // the connection's own upstream handshake, when it made one
	adopted bool          // the pool took own's connection
	bytes   *originConn   // a connection of its own for a client that speaks no HTTP
	ver     uint16        // placeholder: the version of the pool's handshake it mirrors

	mu      sync.Mutex
	dial    *inspect.UpstreamLeg // the first upstream handshake the pool made on its behalf
	carried bool                 // its first request went out
	reused  string               // the connection whose upstream connection carried it, when not its own
}

// open starts c's upstream leg in the pool.
func (p *pool) open(c *conn) (upstreamLeg, error) {
	if po, st, ok := c.pooledOrigin(); ok {
		c.mirror = answerOf("", st)
		c.rec.UpstreamLeg = po.placeholderLeg(c)
		return &poolLeg{c: c, po: po, ver: st.Version}, nil
	}
	return c.openOwnPooled()
}

// openOwnPooled makes c's own upstream handshake for the pool to adopt. A
// connection HTTP never gives the pool reads its tickets meanwhile.
func (c *conn) openOwnPooled() (*poolLeg, error) {
	own, err := openPair(c, false, false)
	l := &poolLeg{c: c, own: own}
	if err == nil && !c.pools() {
		own.oc.startSip()
	}
	return l, err
}

// pooledOrigin returns c's origin in the pool when the pool has
// handshaken with it, and the state to mirror.
func (c *conn) pooledOrigin() (*pooledOrigin, tls.ConnectionState, bool) {
	po, st, remote, ok := c.s.pool.known(c)
	if !ok || c.s.learned.asksForCert(upstream.Key(c.rec.SNI, remote, "")) {
		return nil, tls.ConnectionState{}, false
	}
	// The client leg mirrors the pool's ALPN: the client must have offered it.
	if p := st.NegotiatedProtocol; (p == "") != (len(c.offer.alpn) == 0) || p != "" && !slices.Contains(c.offer.alpn, p) {
		return nil, tls.ConnectionState{}, false
	}
	return po, st, true
}

// pools says whether the pool takes c's requests (origins that ask for
// client certificates are paired).
func (c *conn) pools() bool {
	return c.s.pool != nil && !c.s.learned.asksForCert(c.certOrigin)
}

func (l *poolLeg) version() uint16 {
	if l.own != nil {
		return l.own.version()
	}
	return l.ver
}

func (l *poolLeg) issuesTickets() (issued, known bool) {
	if l.own != nil {
		return l.own.issuesTickets()
	}
	return false, false // the pool's handshake it mirrors is not this connection's
}

func (l *poolLeg) settle() error { return nil }

func (l *poolLeg) transport() (http.RoundTripper, error) {
	c := l.c
	if l.own != nil {
		if !c.pools() {
			return l.own.transport() // paired: the origin asks for certificates
		}
		l.po = c.s.pool.origin(c)
		if tc, ok := l.own.oc.take().(*tls.Conn); ok {
			l.adopted = l.po.adopt(c, tc)
		}
	}
	return l, nil
}

// RoundTrip sends a request over the pool's connections to the origin. The
// pool dials on this connection's behalf when it has no idle upstream
// connection, and says whose connection carried the request.
func (l *poolLeg) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := context.WithValue(req.Context(), poolLegKey{}, l)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		l.noteReused(l.po.owner(info.Conn))
	}})
	// Connection: close is hop-by-hop: it ends the client's connection
	// (net/http, which read the request, closes it after the answer), not
	// the pooled upstream one; the origin's own close is honoured.
	req = req.Clone(ctx)
	req.Close = false
	req.Header.Del("Connection")
	return l.po.tr.RoundTrip(req)
}

func (l *poolLeg) stream() (net.Conn, error) {
	c := l.c
	if l.own != nil {
		return l.own.stream()
	}
	// A pooled connection that speaks no HTTP: it needs an upstream
	// connection of its own to relay to.
	oc, leg, err := c.s.newOriginConn(c.s.ctx, c, c.offer)
	l.noteDial(leg)
	if err != nil {
		c.streamError(sideOrigin, err)
		return nil, errLegSays
	}
	l.bytes = oc
	return oc.take(), nil
}

func (l *poolLeg) probe() bool {
	if l.own != nil {
		return l.own.probe()
	}
	l.c.rec.UpstreamLeg = nil // a placeholder: no handshake of its own was made
	return false
}

func (l *poolLeg) close() bool {
	l.mu.Lock()
	reused, dial := l.reused, l.dial
	l.mu.Unlock()
	switch {
	case l.own != nil && !l.adopted:
		known := l.own.close()
		l.c.rec.UpstreamLeg.ReusedConn = reused
		return known
	case l.own != nil:
		// The pool holds its connection now.
		u := l.c.rec.UpstreamLeg
		u.TicketsReceived, u.ReusedConn = l.own.oc.view.Stored(), reused
		return l.own.oc.ticketsKnown()
	}
	u := l.c.rec.UpstreamLeg
	if u == nil {
		return false
	}
	if d := dial; u.Pooled && d != nil && d.Error == "" {
		// It made an upstream handshake of its own after all: that
		// handshake is its leg.
		*u = *d
		u.Pooled = true
	}
	u.ReusedConn = reused
	if l.bytes != nil {
		l.bytes.close()
		u.TicketsReceived = l.bytes.view.Stored()
		return l.bytes.ticketsKnown()
	}
	return false
}

// noteDial keeps the first upstream handshake the pool made on this
// connection's behalf, for its record.
func (l *poolLeg) noteDial(leg *inspect.UpstreamLeg) {
	l.mu.Lock()
	if l.dial == nil {
		l.dial = leg
	}
	l.mu.Unlock()
}

// unknownOwner names an upstream connection whose maker the pool no longer
// remembers (its table of owners started afresh after 4,096 dials).
const unknownOwner = "?"

// noteReused records which earlier connection's upstream connection
// carried this one's first request.
func (l *poolLeg) noteReused(owner string) {
	if owner == "" {
		owner = unknownOwner
	}
	l.mu.Lock()
	if !l.carried {
		l.carried = true
		if owner != l.c.rec.ID {
			l.reused = owner
		}
	}
	l.mu.Unlock()
}
