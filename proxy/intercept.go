package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// intercept is the path every connection takes once it has arrived (by
// CONNECT, transparent redirect or SNI routing): peek the ClientHello from
// r, record the offer, then either pass the bytes through untouched or
// handshake upstream and terminate the client's TLS mirroring the origin
// (after the upstream handshake, or beside it when the origin's answer is
// known: interceptEarly), and hand the decrypted stream to goproxy.
func (s *Server) intercept(c *conn, r io.Reader) {
	raw := c.client.Conn
	raw.SetReadDeadline(s.cfg.Now().Add(s.cfg.PeekTimeout))
	msg, peeked, err := inspect.ReadClientHello(r)
	raw.SetReadDeadline(time.Time{})
	replay := peeked
	if br, ok := r.(*bufio.Reader); ok {
		// Bytes bufio read past the hello belong to the client stream too.
		replay = append(replay, bufferedBytes(br)...)
	}
	c.replayed = len(replay)
	if err == nil || errors.Is(err, inspect.ErrNotTLS) || errors.Is(err, inspect.ErrSSLv2) {
		establish(raw) // it spoke: it keeps its slot under --max-conns
	} else if wasEvicted(raw) {
		err = errEvicted
	}
	if err != nil {
		if errors.Is(err, inspect.ErrNotTLS) || errors.Is(err, inspect.ErrSSLv2) {
			s.relayUntouched(c, replay, err)
			return
		}
		c.fail(fmt.Errorf("reading the ClientHello: %w", err))
		return
	}
	var hello inspect.ClientHello
	if err := hello.Unmarshal(msg); err != nil {
		c.fail(err)
		return
	}
	c.rec.SNI = string(hello.ServerName)
	routeErr := error(nil)
	if c.rec.Target == "" {
		routeErr = s.routeBySNI(c)
	}
	// A session ID counts as an attempt when this origin issued it earlier
	// in this run (seen when a connection to it was passed through).
	issued := s.history.Has(c.dialAddr(), hello.SessionID)
	c.rec.ClientHello = inspect.NewClientHelloRecord(&hello, inspect.AttemptOf(&hello, issued), inspect.Fingerprint(&hello, inspect.TransportTCP))
	c.open()
	if routeErr != nil {
		c.fail(routeErr)
		return
	}
	if why := s.passthroughReason(c); why != "" {
		s.passthrough(c, replay, why)
		return
	}
	if why := s.sessionIDReason(c, 0); why != "" {
		s.passthrough(c, replay, why)
		return
	}
	c.offer = newUpstreamOffer(&hello)
	var upState tls.ConnectionState
	if po, st, ok := s.pooledOrigin(c); ok {
		// --upstream-reuse pool: mirror the pool's last handshake with this
		// origin; the requests ride the pool's upstream connections.
		c.pooled, upState = po, st
		c.rec.UpstreamLeg = po.placeholderLeg(c)
	} else {
		raw, err := s.openUpstream(c)
		if err == nil {
			if known, ok := s.earlyAnswer(c); ok {
				s.interceptEarly(c, raw, replay, known)
				return
			}
			err = s.handshakeUpstream(c, raw)
		}
		if err != nil {
			if s.ctx.Err() != nil {
				c.finish() // shutting down
				return
			}
			// Without an origin there is nothing to mirror or relay: the
			// client is told what failed (a 502 page, or an alert).
			s.answerFailure(c, &replayConn{Conn: c.client, pending: replay}, err)
			return
		}
		upState = c.up.tls.ConnectionState()
	}
	if why := s.sessionIDReason(c, upState.Version); why != "" {
		// Only now is it known that the origin speaks TLS 1.2: the upstream
		// handshake made for interception is given up, and the client's
		// bytes go to the origin on a new connection.
		c.dropUpstream()
		s.passthrough(c, replay, why)
		return
	}
	if c.up != nil && !s.pools(c) {
		// (A connection the pool adopts is read at once by HTTP, which
		// takes the origin's tickets; a sip would read an h2 origin's
		// SETTINGS first and make it unadoptable.)
		c.up.startSip()
	}
	cfg := s.clientConfig(c, answerOf("", upState))
	c.facts.ticketsDisabled = cfg.SessionTicketsDisabled
	tc, err := s.clientHandshake(s.ctx, c, &replayConn{Conn: c.client, pending: replay}, cfg)
	c.rec.ClientLeg = c.clientLeg
	if err != nil {
		s.noteRejection(c)
		c.finish()
		return
	}
	if err := s.mirrorIdentity(c, tc); err != nil {
		tc.Close()
		c.finish()
		return
	}
	s.relay.serveTLS(c, tc)
}

// noteRejection feeds --auto-passthrough a client leg that rejected
// tlsresume's certificate.
func (s *Server) noteRejection(c *conn) {
	if !s.cfg.AutoPassthrough || !rejectedCertificate(c.clientLeg) {
		return
	}
	if s.autoPass.reject(c.passClient(), c.serverName(), c.rec.ID, c.clientLeg.Alert, s.cfg.Now()) {
		s.cfg.Log.Info().Str("client", c.passClient()).Str("host", c.serverName()).Str("conn", c.rec.ID).
			Msg("--auto-passthrough: this client's connections to this host are now passed through")
	}
}

// pools says whether --upstream-reuse pool takes c's requests (origins
// that ask for client certificates are paired).
func (s *Server) pools(c *conn) bool {
	return s.pool != nil && !s.origins.asksForCert(c.certOrigin)
}

// pooledOrigin returns c's origin in --upstream-reuse pool's pool when the
// pool has handshaken with it, and the state to mirror. Origins that ask
// for client certificates are paired as usual: identities are never
// pooled across client connections.
func (s *Server) pooledOrigin(c *conn) (*pooledOrigin, tls.ConnectionState, bool) {
	if s.pool == nil {
		return nil, tls.ConnectionState{}, false
	}
	po, st, remote, ok := s.pool.known(c)
	if !ok || s.origins.asksForCert(upstream.Key(c.rec.SNI, remote, "")) {
		return nil, tls.ConnectionState{}, false
	}
	// The client leg mirrors the pool's ALPN: the client must have offered it.
	if p := st.NegotiatedProtocol; (p == "") != (len(c.offer.alpn) == 0) || p != "" && !slices.Contains(c.offer.alpn, p) {
		return nil, tls.ConnectionState{}, false
	}
	return po, st, true
}

// interceptUpstream makes the connection's upstream leg: dial the origin,
// look up what is known about it by the address reached (the key the
// upstream cache uses too), then handshake through the upstream cache.
func (s *Server) interceptUpstream(c *conn) (*upstreamConn, error) {
	raw, err := s.openUpstream(c)
	if err != nil {
		return nil, err
	}
	err = s.handshakeUpstream(c, raw)
	return c.up, err
}

// handshakeUpstream completes c's upstream leg on raw, and remembers how
// the origin answered this offer for the connections that follow.
func (s *Server) handshakeUpstream(c *conn, raw net.Conn) error {
	up, err := s.handshakeOrigin(s.ctx, c, raw, c.offer, c.rec.UpstreamLeg)
	c.up = up
	if err == nil {
		s.origins.rememberAnswer(answerKey(c), answerOf(c.rec.ID, up.tls.ConnectionState()))
	}
	return err
}

// openUpstream dials the origin for c's upstream leg and looks up what is
// known about it by the address reached.
func (s *Server) openUpstream(c *conn) (net.Conn, error) {
	raw, leg, err := s.dialOrigin(s.ctx, c)
	c.rec.UpstreamLeg = leg
	if err != nil {
		return nil, err
	}
	if c.ident == nil {
		c.ident = s.upstreamIdentity(c.serverName())
	}
	c.setOrigin(raw.RemoteAddr())
	origin, nameSeen := s.origins.openOrigin(c.origin, c.nameKey())
	c.originOpened = true
	c.facts = verdictFacts{
		originSeen:        origin.conns > 0,
		originIssuedNoTkt: origin.conns > 0 && origin.tickets == 0,
		originOpen:        origin.open > 0,
		nameSeen:          nameSeen,
	}
	return raw, nil
}

// mirrorIdentity makes the upstream leg present the identity the client
// presented, when tlsresume holds its key and presented another (or none)
// upstream: the upstream handshake is made again with it, so each identity
// an app uses reaches the origin unchanged (seed 001).
func (s *Server) mirrorIdentity(c *conn, tc *tls.Conn) error {
	// On a resumed handshake the certificate is the session's: the
	// upstream leg must then use that identity's session too, never
	// another identity's.
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	id := s.heldIdentity(st.PeerCertificates[0].Raw)
	if id == nil || id.key() == c.ident.key() {
		return nil
	}
	disabled := c.facts.ticketsDisabled
	c.dropUpstream()
	c.ident = id
	up, err := s.interceptUpstream(c)
	c.facts.ticketsDisabled = disabled
	if err != nil {
		return err
	}
	up.startSip()
	return nil
}
