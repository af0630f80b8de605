package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// originConn is one TLS connection tlsresume made to an origin, and
// what its handshake left to read.
type originConn struct {
	tls    *tls.Conn
	raw    *countingConn
	view   *upstream.View
	hsRead int64      // bytes read by the end of the handshake
	sip    *ticketSip // TLS 1.3: reads the origin's tickets until take
}

// close closes the upstream connection, if there is one.
func (u *originConn) close() {
	if u != nil {
		u.tls.Close()
	}
}

// startSip begins reading the origin's post-handshake tickets (TLS 1.3).
func (u *originConn) startSip() {
	if u.tls.ConnectionState().Version >= tls.VersionTLS13 {
		u.sip = newSip(u.tls)
	}
}

// take stops the ticket sip and returns the connection to read from: the
// *tls.Conn itself, or, when the origin already sent application data, a
// conn that replays it first.
func (u *originConn) take() net.Conn {
	if u.sip == nil {
		return u.tls
	}
	first := u.sip.stop()
	u.sip = nil
	if len(first) > 0 {
		return &replayConn{Conn: u.tls, pending: first}
	}
	return u.tls
}

// ticketsKnown reports whether the connection saw every ticket the origin
// sent: TLS 1.2 tickets come inside the handshake, TLS 1.3 tickets after it,
// read by crypto/tls only with the first application data.
func (u *originConn) ticketsKnown() bool {
	if u == nil || u.tls == nil {
		return false
	}
	return u.tls.ConnectionState().Version < tls.VersionTLS13 || u.raw.read.Load() > u.hsRead
}

// ticketSip reads an idle upstream TLS 1.3 connection in the background
// until something takes it (originConn.take), so crypto/tls processes the
// origin's NewSessionTicket messages meanwhile; application data read meanwhile (an
// origin that speaks first) is kept for replay.
type ticketSip struct {
	c    *tls.Conn
	done chan struct{}
	data []byte
}

func newSip(c *tls.Conn) *ticketSip {
	s := &ticketSip{c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		// Small: crypto/tls keeps the rest of a record it read for the
		// next Read (replayConn's), and this buffer lives as long as an
		// idle connection does.
		buf := make([]byte, 512)
		n, _ := c.Read(buf)
		if n > 0 {
			s.data = bytes.Clone(buf[:n]) // not the whole buffer, for the connection's life
		}
	}()
	return s
}

// stop interrupts the read and returns what it read. A read cut short by
// its deadline leaves crypto/tls able to read on: timeouts are temporary
// errors, which do not poison the connection (crypto/tls/conn.go).
func (s *ticketSip) stop() []byte {
	s.c.SetReadDeadline(time.Now())
	<-s.done
	s.c.SetReadDeadline(time.Time{})
	return s.data
}

// upstreamOffer is what tlsresume offers the origin on the client's behalf.
type upstreamOffer struct {
	alpn   []string
	groups []tls.CurveID // nil: crypto/tls's defaults
}

// newUpstreamOffer copies the client's ALPN (see offeredALPN) and its
// supported groups, in its order, as far as crypto/tls implements them: the
// origin then picks the key exchange it would pick for the client.
func newUpstreamOffer(h *inspect.ClientHello) upstreamOffer {
	o := upstreamOffer{alpn: offeredALPN(h)}
	for _, g := range h.SupportedGroups {
		switch id := tls.CurveID(g); id {
		case tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521:
			o.groups = append(o.groups, id)
		}
	}
	return o
}

// servableALPN are the protocols tlsresume can serve inside an intercepted
// connection through goproxy; other ALPN values are relayed as opaque bytes.
var servableALPN = []string{"h2", "http/1.1"}

// offeredALPN is what tlsresume offers upstream: the client's ALPN list,
// in its order, limited to what goproxy can serve — or the client's whole
// list when it offers none of those (the connection is then relayed as
// bytes).
func offeredALPN(h *inspect.ClientHello) []string {
	var all, servable []string
	for _, p := range h.ALPN {
		all = append(all, string(p))
		for _, s := range servableALPN {
			if string(p) == s {
				servable = append(servable, s)
			}
		}
	}
	if len(servable) > 0 {
		return servable
	}
	return all
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
	return s.dialer().DialContext(ctx, "tcp", c.dialAddr())
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
			cert, err := s.verified.verify(cs, serverName, s.cfg.UpstreamRoots, s.cfg.Now())
			leg.Verified, leg.Certificate = err == nil, cert
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
