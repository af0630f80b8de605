package proxy

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
		buf := make([]byte, 4096)
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
