package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// The path's plumbing: the dial made while the hello arrives, the cache
// of origin chain verifications, and a connection that counts its bytes.

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
		p.conn, p.err = s.dialer().DialContext(s.ctx, "tcp", addr)
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

// verifyCache remembers chain verification results, and the record of
// the certificate verified, so a resumed (or repeated) upstream handshake
// does not verify the same chain again, nor describe it again.
type verifyCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifyResult
}

type verifyResult struct {
	err     error
	cert    *inspect.Certificate // shared by every record of this chain: never changed
	expires time.Time
}

// verify checks cs's chain for name, from the cache when it can, and
// describes the certificate for the record (nil when there is none). A
// result is kept for an hour, or until the leaf expires.
func (v *verifyCache) verify(cs tls.ConnectionState, name string, roots *x509.CertPool, now time.Time) (*inspect.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, verifyChain(cs, name, roots)
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
		return r.cert, r.err
	}
	err := verifyChain(cs, name, roots)
	r = verifyResult{err: err, cert: certificateRecord(cs.PeerCertificates, err), expires: now.Add(time.Hour)}
	if na := cs.PeerCertificates[0].NotAfter; na.Before(r.expires) {
		r.expires = na
	}
	v.mu.Lock()
	if v.m == nil || len(v.m) >= 4096 {
		v.m = map[[32]byte]verifyResult{}
	}
	v.m[key] = r
	v.mu.Unlock()
	return r.cert, err
}

// certificateRecord describes an origin's chain, whose verification ended
// with err, for the upstream leg's record.
func certificateRecord(chain []*x509.Certificate, err error) *inspect.Certificate {
	leaf := chain[0]
	c := &inspect.Certificate{
		Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		ChainLen: len(chain), Verified: err == nil,
		Names: make([]string, 0, len(leaf.DNSNames)+len(leaf.IPAddresses)),
	}
	c.Names = append(c.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		c.Names = append(c.Names, ip.String())
	}
	if err != nil {
		c.VerifyError = err.Error()
	}
	return c
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
