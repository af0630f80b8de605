package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// intercept is the path every connection takes once it has arrived (by
// CONNECT, transparent redirect or SNI routing): peek the ClientHello from
// r, record the offer, then either pass the bytes through untouched or
// handshake upstream first and terminate the client's TLS mirroring the
// origin, and hand the decrypted stream to goproxy.
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
	if err != nil {
		if errors.Is(err, inspect.ErrNotTLS) || errors.Is(err, inspect.ErrSSLv2) {
			s.tunnel(c, replay, err)
			return
		}
		c.fail("reading the ClientHello: " + err.Error())
		return
	}
	var hello inspect.ClientHello
	if err := hello.Unmarshal(msg); err != nil {
		c.fail(err.Error())
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
	c.rec.ClientHello = inspect.NewClientHelloRecord(&hello, inspect.Attempt(&hello, issued), inspect.Fingerprint(&hello, inspect.TransportTCP))
	if routeErr != nil {
		c.fail(routeErr.Error())
		return
	}
	if why := s.passthroughReason(c); why != "" {
		s.passthrough(c, replay, why)
		return
	}
	origin := s.origins.origin(c.originKey())
	c.facts = verdictFacts{
		clientHadTicket:   s.origins.clientHadTicket(c.clientKey()),
		originSeen:        origin.conns > 0,
		originIssuedNoTkt: origin.conns > 0 && origin.tickets == 0,
		originOpen:        origin.open > 0,
	}
	s.origins.openOrigin(c.originKey())
	c.originOpened = true

	ctx := context.Background()
	c.offer = newUpstreamOffer(&hello)
	up, leg := s.dialUpstream(ctx, c, c.offer)
	c.rec.UpstreamLeg, c.up = leg, up
	if up == nil {
		// Without an origin there is nothing to mirror or relay: closing the
		// connection tells the client, as a failing origin would.
		c.fail("")
		return
	}
	up.startSip()
	upState := up.tls.ConnectionState()
	cfg := s.clientConfig(c, &upState)
	c.facts.ticketsDisabled = cfg.SessionTicketsDisabled
	tc, err := s.clientHandshake(ctx, c, &replayConn{Conn: c.client, pending: replay}, cfg)
	c.rec.ClientLeg = c.clientLeg
	if err != nil {
		if s.cfg.AutoPassthrough && rejectedCertificate(c.clientLeg) {
			s.autoPass.add(c.passKey(), c.rec.ID)
		}
		c.finish()
		return
	}
	s.relay.serveTLS(c, tc)
}

// dialAddr is where the upstream leg connects: the original destination in
// transparent mode, else the target host:port.
func (c *conn) dialAddr() string {
	if c.origDst.IsValid() {
		return c.origDst.String()
	}
	return c.rec.Target
}

// passKey names a host for passthrough decisions: its SNI, else the target.
func (c *conn) passKey() string {
	if c.rec.SNI != "" {
		return c.rec.SNI
	}
	host, _, _ := net.SplitHostPort(c.rec.Target)
	return host
}
