package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// Upstream reuse modes (Config.UpstreamReuse, --upstream-reuse).
const (
	// ReusePair makes one upstream connection, with its own handshake, for
	// every client connection: each record pairs the two handshakes.
	ReusePair = "pair"
	// ReusePool carries client connections' requests on a bounded pool of
	// upstream connections per origin (HTTP/1.1 keep-alive, HTTP/2
	// multiplexing), for labs that need throughput more than one-to-one
	// pairing. A client connection to an origin the pool knows makes no
	// upstream handshake of its own: its client leg mirrors the pool's last
	// upstream handshake, and its record names the earlier connection
	// whose upstream connection carried its first request (reused_conn).
	ReusePool = "pool"
)

const (
	maxPooledOrigins   = 256 // origins the pool keeps; past it, it starts afresh
	poolIdlePerOrigin  = 16  // idle upstream connections kept per origin
	poolSparePerOrigin = 4   // handshaken connections waiting for their first request
)

// pool is --upstream-reuse pool's upstream connections, by origin: server
// name, dialled address and client identity.
type pool struct {
	s       *Server
	mu      sync.Mutex
	origins map[string]*pooledOrigin
	addrs   map[string]bool // dialled addresses of origins, for hasAddr
}

// pooledOrigin is one origin's shared transport and what a client leg
// mirrors when it arrives.
type pooledOrigin struct {
	s         *Server
	originKey string // upstream.Key, as memory and the session cache name it
	mu        sync.Mutex
	known     bool
	state     tls.ConnectionState // of the last upstream handshake made for this origin
	remote    string
	spare     []*tls.Conn         // handshaken by intercept, waiting for the transport
	owners    map[net.Conn]string // upstream connection → the client connection that made it
	tr        *http.Transport
}

type poolLegKey struct{}

func newPool(s *Server) *pool {
	return &pool{s: s, origins: map[string]*pooledOrigin{}, addrs: map[string]bool{}}
}

func poolKey(c *conn) string { return c.rec.SNI + "|" + c.dialAddr() + "|" + c.ident.key() }

// origin returns c's origin in the pool, made on first use.
func (p *pool) origin(c *conn) *pooledOrigin {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := poolKey(c)
	if po := p.origins[key]; po != nil {
		return po
	}
	if len(p.origins) >= maxPooledOrigins {
		for _, po := range p.origins {
			po.tr.CloseIdleConnections()
		}
		p.origins, p.addrs = map[string]*pooledOrigin{}, map[string]bool{}
	}
	p.addrs[c.dialAddr()] = true
	po := &pooledOrigin{s: p.s, owners: map[net.Conn]string{}}
	po.tr = &http.Transport{
		DialTLSContext:      po.dial,
		ForceAttemptHTTP2:   true,
		DisableCompression:  true,
		MaxIdleConnsPerHost: poolIdlePerOrigin,
		IdleConnTimeout:     p.s.cfg.IdleTimeout,
	}
	p.origins[key] = po
	return po
}

// hasAddr says whether the pool serves an origin at the dialled address
// addr (any name): its first client connection already handshook with it.
func (p *pool) hasAddr(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[addr]
}

// known returns c's origin when the pool has made a handshake with it, the
// state a client leg mirrors, and the address it reached.
func (p *pool) known(c *conn) (po *pooledOrigin, st tls.ConnectionState, remote string, ok bool) {
	p.mu.Lock()
	po = p.origins[poolKey(c)]
	p.mu.Unlock()
	if po == nil {
		return nil, st, "", false
	}
	po.mu.Lock()
	defer po.mu.Unlock()
	return po, po.state, po.remote, po.known
}

// adopt takes c's own upstream connection, handshaken for mirroring, into
// the pool: the next request on this origin rides it. (No ticket sip runs
// on it: an h2 origin's SETTINGS, read early, would leave a connection
// http.Transport cannot take as TLS.) It says whether the pool took it.
func (po *pooledOrigin) adopt(c *conn, tc *tls.Conn) bool {
	st := tc.ConnectionState()
	po.mu.Lock()
	defer po.mu.Unlock()
	po.known, po.state, po.remote, po.originKey = true, st, tc.RemoteAddr().String(), c.origin
	if len(po.spare) >= poolSparePerOrigin {
		return false
	}
	po.spare = append(po.spare, tc)
	po.owners[tc] = c.rec.ID
	return true
}

// placeholderLeg is the upstream leg of a client connection that made no
// upstream handshake of its own at first: what it mirrors.
func (po *pooledOrigin) placeholderLeg(c *conn) *inspect.UpstreamLeg {
	po.mu.Lock()
	defer po.mu.Unlock()
	c.origin = po.originKey
	c.certOrigin = upstream.Key(c.rec.SNI, po.remote, "")
	return &inspect.UpstreamLeg{
		Addr: c.dialAddr(), RemoteAddr: po.remote, SNI: c.rec.SNI, Pooled: true,
		Version: inspect.VersionName(po.state.Version), CipherSuite: tls.CipherSuiteName(po.state.CipherSuite),
		ALPN: po.state.NegotiatedProtocol, Verified: !po.s.cfg.InsecureUpstream, Insecure: po.s.cfg.InsecureUpstream,
	}
}

// dial gives the shared transport a spare connection, or makes a new one
// on behalf of the client connection whose request needs it.
func (po *pooledOrigin) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	po.mu.Lock()
	if n := len(po.spare); n > 0 {
		tc := po.spare[n-1]
		po.spare = po.spare[:n-1]
		po.mu.Unlock()
		return tc, nil
	}
	po.mu.Unlock()
	l, ok := ctx.Value(poolLegKey{}).(*poolLeg)
	if !ok {
		return nil, errors.New("pooled dial without a client connection")
	}
	c := l.c
	up, leg, err := po.s.newOriginConn(ctx, c, c.offer)
	l.noteDial(leg)
	if err != nil {
		return nil, err
	}
	st := up.tls.ConnectionState()
	po.mu.Lock()
	if len(po.owners) >= 4096 {
		po.owners = map[net.Conn]string{} // closed connections' entries; live ones are re-learnt as unknown
	}
	po.owners[up.tls] = c.rec.ID
	po.known, po.state, po.remote = true, st, up.tls.RemoteAddr().String()
	if po.originKey == "" {
		po.originKey = c.origin
	}
	po.mu.Unlock()
	return up.tls, nil
}

// owner is the client connection that made upstream connection uc.
func (po *pooledOrigin) owner(uc net.Conn) string {
	po.mu.Lock()
	defer po.mu.Unlock()
	return po.owners[uc]
}

// close ends every pooled upstream connection (Shutdown).
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, po := range p.origins {
		po.tr.CloseIdleConnections()
		po.mu.Lock()
		for _, tc := range po.spare {
			tc.Close()
		}
		po.spare = nil
		po.mu.Unlock()
	}
}
