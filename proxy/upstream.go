package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/tlsresume/tlsresume/inspect"
)

// upstreamLeg is how a connection reaches its origin, behind one seam:
// a connection and handshake of its own (pairLeg, --upstream-reuse pair,
// pair.go) or the pool's connections (poolLeg, pool.go). open has already
// run when a leg is handed out; its record is c.rec.UpstreamLeg, written
// as its facts arise.
type upstreamLeg interface {
	// version is the TLS version the origin negotiated on this
	// connection's own upstream handshake, once it is complete; else 0.
	version() uint16
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

// settleUpstream waits for an upstream handshake the client's was answered
// ahead of. Shutting down is not the origin's failure.
func (c *conn) settleUpstream() error {
	err := c.up.settle()
	if err != nil && c.s.ctx.Err() != nil {
		return errLegSays
	}
	return err
}

// errLoop refuses a connection to one of tlsresume's own listeners.
var errLoop = errors.New("refusing to connect to tlsresume's own listener (a loop)")

// dialOrigin opens the TCP connection of an upstream leg and starts the
// leg's record.
func (s *Server) dialOrigin(ctx context.Context, c *conn) (net.Conn, *inspect.UpstreamLeg, error) {
	leg := &inspect.UpstreamLeg{Addr: c.dialAddr(), SNI: c.rec.SNI, Insecure: s.cfg.InsecureUpstream}
	start := s.cfg.Now()
	raw, err := s.dialTCP(ctx, c)
	if err == nil && s.isSelfAddr(raw.RemoteAddr()) {
		raw.Close()
		err = errLoop
	}
	// handshake_ms counts from the dial: with the origin dialled while the
	// hello arrived, the wait for the TCP connection is mostly gone.
	leg.HandshakeMS = ms(s.cfg.Now().Sub(start))
	if err != nil {
		err = fmt.Errorf("dial %s: %w", leg.Addr, err)
		leg.Error = err.Error()
		return nil, leg, err
	}
	leg.RemoteAddr = raw.RemoteAddr().String()
	return raw, leg, nil
}

// dialTCP connects to c's destination: the first time with the connection
// dialled while the client was still sending its hello, if there is one.
func (s *Server) dialTCP(ctx context.Context, c *conn) (net.Conn, error) {
	if raw, ok, err := c.pre.take(); ok {
		return raw, err
	}
	d := net.Dialer{Timeout: s.cfg.DialTimeout, Resolver: s.cfg.Resolver}
	return d.DialContext(ctx, "tcp", c.dialAddr())
}

// noteOrigin names the origin a new upstream connection reached, counts it
// open, and keeps what was known of it before, for the verdict.
func (c *conn) noteOrigin(remote string) {
	if c.ident == nil {
		c.ident = c.s.upstreamIdentity(c.serverName())
	}
	c.setOrigin(remote)
	before, nameSeen := c.s.learned.openOrigin(c.origin, c.nameKey())
	c.counted = true
	c.facts = verdictFacts{
		originSeen:        before.conns > 0,
		originIssuedNoTkt: before.conns > 0 && before.tickets == 0,
		originOpen:        before.open > 0,
		nameSeen:          nameSeen,
	}
}

// handshakeOrigin completes an upstream TLS handshake on raw, offering
// what the client offered (SNI, ALPN, groups) through tlsresume's own
// session cache, and records it in leg.
func (s *Server) handshakeOrigin(ctx context.Context, c *conn, raw net.Conn, offer upstreamOffer, leg *inspect.UpstreamLeg) (*originConn, error) {
	start := s.cfg.Now()
	cc := &countingConn{Conn: raw}
	// The cache is keyed like Apple's: server name + address + port (seed 001).
	view := s.cfg.Upstream.For(c.rec.ID, c.rec.SNI, raw.RemoteAddr().String(), c.ident.key())
	serverName := c.serverName()
	cfg := &tls.Config{
		ServerName:         serverName,
		NextProtos:         offer.alpn,
		CurvePreferences:   offer.groups,
		ClientSessionCache: view,
		// Answer a CertificateRequest with the identity chosen for this
		// connection, or with none.
		GetClientCertificate: presentIdentity(leg, c.ident),
		RootCAs:              s.cfg.UpstreamRoots,
		KeyLogWriter:         s.cfg.KeyLog,
		MinVersion:           tls.VersionTLS10,
		Time:                 s.cfg.Now,
		// Verification is done in VerifyConnection so that an insecure
		// upstream still records whether the certificate verified.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := s.verified.verify(cs, serverName, s.cfg.UpstreamRoots, s.cfg.Now())
			leg.Verified = err == nil
			if err != nil && !s.cfg.InsecureUpstream {
				return err
			}
			return nil
		},
	}
	tc := tls.Client(cc, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	leg.HandshakeMS += ms(s.cfg.Now().Sub(start))
	lk := view.Lookup()
	leg.Cache, leg.Offered, leg.SessionFrom, leg.SessionAgeMS = lk.Result, lk.Offered, lk.From, lk.AgeMS
	if leg.ClientCert != nil && leg.ClientCert.Requested {
		s.learned.noteCertRequest(c.certOrigin)
	}
	if err != nil {
		tc.Close()
		leg.Error = err.Error()
		return nil, err
	}
	st := tc.ConnectionState()
	leg.Version = inspect.VersionName(st.Version)
	leg.CipherSuite = tls.CipherSuiteName(st.CipherSuite)
	leg.ALPN = st.NegotiatedProtocol
	leg.Resumed = st.DidResume
	recordUpstreamResumption(leg, c.ident)
	return &originConn{tls: tc, raw: cc, view: view, hsRead: cc.read.Load()}, nil
}

// newOriginConn dials the origin and handshakes with it, for a further
// upstream connection (HTTP needed another; the pool dials on a request's
// behalf). It always returns a leg describing what happened.
func (s *Server) newOriginConn(ctx context.Context, c *conn, offer upstreamOffer) (*originConn, *inspect.UpstreamLeg, error) {
	raw, leg, err := s.dialOrigin(ctx, c)
	if err != nil {
		return nil, leg, err
	}
	up, err := s.handshakeOrigin(ctx, c, raw, offer, leg)
	return up, leg, err
}

// reopenUpstream makes the upstream leg again with a handshake of its own,
// after the client presented another identity than the leg did.
func (c *conn) reopenUpstream() error {
	if c.s.pool != nil {
		up, err := c.openOwnPooled()
		c.up = up
		return err
	}
	up, err := openPair(c, false, true)
	c.up = up
	return err
}
