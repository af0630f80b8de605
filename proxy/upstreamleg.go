package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// upstreamConn is one handshake tlsresume made with the origin.
type upstreamConn struct {
	tls    *tls.Conn
	raw    *countingConn
	view   *upstream.View
	hsRead int64      // bytes read by the end of the handshake
	sip    *ticketSip // TLS 1.3: reads the origin's tickets until take
}

// close closes the upstream connection, if there is one.
func (u *upstreamConn) close() {
	switch {
	case u == nil:
	case u.tls != nil:
		u.tls.Close()
	default:
		u.raw.Close()
	}
}

// startSip begins reading the origin's post-handshake tickets (TLS 1.3).
func (u *upstreamConn) startSip() {
	if u.tls.ConnectionState().Version >= tls.VersionTLS13 {
		u.sip = newSip(u.tls)
	}
}

// take stops the ticket sip and returns the connection to read from: the
// *tls.Conn itself, or, when the origin already sent application data, a
// conn that replays it first.
func (u *upstreamConn) take() net.Conn {
	if u.sip == nil {
		return u.tls
	}
	early := u.sip.stop()
	u.sip = nil
	if len(early) > 0 {
		return &replayConn{Conn: u.tls, pending: early}
	}
	return u.tls
}

// ticketsKnown reports whether the connection saw every ticket the origin
// sent: TLS 1.2 tickets come inside the handshake, TLS 1.3 tickets after it,
// read by crypto/tls only with the first application data.
func (u *upstreamConn) ticketsKnown() bool {
	if u == nil || u.tls == nil {
		return false
	}
	return u.tls.ConnectionState().Version < tls.VersionTLS13 || u.raw.read.Load() > u.hsRead
}

// dialUpstream connects to c's destination and completes a TLS handshake
// offering what the client offered (SNI, ALPN, groups), through
// tlsresume's own session cache. It always returns a leg describing what
// happened, and the error that ended it, if one did.
func (s *Server) dialUpstream(ctx context.Context, c *conn, offer upstreamOffer) (*upstreamConn, *inspect.UpstreamLeg, error) {
	raw, leg, err := s.dialOrigin(ctx, c)
	if err != nil {
		return nil, leg, err
	}
	up, err := s.handshakeOrigin(ctx, c, raw, offer, leg)
	return up, leg, err
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

// handshakeOrigin completes the upstream leg's TLS handshake on raw and
// records it in leg.
func (s *Server) handshakeOrigin(ctx context.Context, c *conn, raw net.Conn, offer upstreamOffer, leg *inspect.UpstreamLeg) (*upstreamConn, error) {
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
		s.origins.noteCertRequest(c.certOrigin)
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
	return &upstreamConn{tls: tc, raw: cc, view: view, hsRead: cc.read.Load()}, nil
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

// predial connects to a connection's destination as soon as it is known
// (the CONNECT target, the original destination), while the client is
// still sending its ClientHello: the TCP handshake with the origin leaves
// the critical path of every intercepted connection.
type predial struct {
	done  chan struct{}
	conn  net.Conn
	err   error
	taken atomic.Bool
}

func (s *Server) startPredial(addr string) *predial {
	if s.pool != nil && s.pool.hasAddr(addr) {
		return nil // --upstream-reuse pool: requests to this address ride pooled connections
	}
	p := &predial{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		d := net.Dialer{Timeout: s.cfg.DialTimeout, Resolver: s.cfg.Resolver}
		p.conn, p.err = d.DialContext(s.ctx, "tcp", addr)
	}()
	return p
}

// take returns the dialled connection, once; ok is false afterwards, or
// when nothing was dialled early.
func (p *predial) take() (c net.Conn, ok bool, err error) {
	if p == nil || p.taken.Swap(true) {
		return nil, false, nil
	}
	<-p.done
	return p.conn, true, p.err
}

// discard closes the connection if nobody took it.
func (p *predial) discard() {
	if p == nil || p.taken.Swap(true) {
		return
	}
	go func() {
		<-p.done
		if p.conn != nil {
			p.conn.Close()
		}
	}()
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

// verifyCache remembers chain verification results, so a resumed (or
// repeated) upstream handshake does not verify the same chain again.
type verifyCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifyResult
}

type verifyResult struct {
	err     error
	expires time.Time
}

// verify checks cs's chain for name, from the cache when it can. A result
// is kept for an hour, or until the leaf expires.
func (v *verifyCache) verify(cs tls.ConnectionState, name string, roots *x509.CertPool, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return verifyChain(cs, name, roots)
	}
	h := sha256.New()
	h.Write([]byte(name))
	for _, c := range cs.PeerCertificates {
		h.Write([]byte{0})
		h.Write(c.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	v.mu.Lock()
	r, ok := v.m[key]
	v.mu.Unlock()
	if ok && now.Before(r.expires) {
		return r.err
	}
	err := verifyChain(cs, name, roots)
	exp := now.Add(time.Hour)
	if na := cs.PeerCertificates[0].NotAfter; na.Before(exp) {
		exp = na
	}
	v.mu.Lock()
	if v.m == nil || len(v.m) >= 4096 {
		v.m = map[[32]byte]verifyResult{}
	}
	v.m[key] = verifyResult{err, exp}
	v.mu.Unlock()
	return err
}

// verifyChain verifies the origin's chain for name against roots (nil:
// the system roots). A resumed session carries the certificates of the
// handshake that created it, so this works for resumptions too.
func verifyChain(cs tls.ConnectionState, name string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("upstream sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err
}

// countingConn counts the bytes read and written on a connection.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}

// CloseWrite half-closes the connection when it can.
func (c *countingConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite half-closes c if it supports it (TCP, TLS), else closes it.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
