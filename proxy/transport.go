package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/net/http2"
)

// originTransport is the per-connection goproxy RoundTripper: every request goes to
// the target over tlsresume's upstream connection for this client
// connection; more are dialled (and counted) only when HTTP needs them.
//
// The origin's TLS 1.3 tickets arrive after the handshake and crypto/tls
// stores them only when the connection is read. A client that opens a
// connection and sends nothing for a while (a browser's preconnect, an
// idle second s_client) would leave the upstream ticket unread, and the
// next connection could not resume upstream. So the upstream connection is
// read from the end of its handshake (ticketSip, started by intercept)
// until HTTP takes it: HTTP/2 by golang.org/x/net/http2's ClientConn, whose
// read loop starts at once, HTTP/1.1 with the first request.
type originTransport struct {
	c     *conn
	mu    sync.Mutex
	h1    *http.Transport // origin speaks HTTP/1.1 (or no ALPN)
	first net.Conn        // h1: the upstream connection, handed out once
	h2t   *http2.Transport
	h2    *http2.ClientConn // origin speaks h2
	more  []*upstreamConn
	extra atomic.Int32
	ua    string        // the first request's User-Agent: which program this is
	pool  *pooledOrigin // --upstream-reuse pool: h1 is the origin's shared transport
}

func newOriginTransport(c *conn) (*originTransport, error) {
	t := &originTransport{c: c}
	if c.pooled != nil || c.s.pools(c) {
		// --upstream-reuse pool: the origin's shared transport, given this
		// connection's own upstream connection (made for mirroring) first.
		po := c.pooled
		if po == nil {
			po = c.s.pool.origin(c)
			if tc, ok := c.up.take().(*tls.Conn); ok {
				po.adopt(c, &upstreamConn{tls: tc})
			}
		}
		t.pool, t.h1 = po, po.tr
		return t, nil
	}
	st := c.up.tls.ConnectionState()
	if st.NegotiatedProtocol == "h2" {
		t.h2t = &http2.Transport{DisableCompression: true}
		cc, err := t.h2t.NewClientConn(c.up.take())
		if err != nil {
			return nil, err
		}
		t.h2 = cc
		return t, nil
	}
	t.first = c.up.tls // taken with the first request: the sip reads until then
	t.h1 = &http.Transport{
		Proxy:               nil,
		DialTLSContext:      t.dialTLS,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     c.s.cfg.IdleTimeout,
	}
	return t, nil
}

func (t *originTransport) RoundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	t.mu.Lock()
	if t.ua == "" {
		t.ua = req.Header.Get("User-Agent")
	}
	t.mu.Unlock()
	req.URL.Scheme = "https"
	req.URL.Host = t.c.rec.Target
	var resp *http.Response
	var err error
	if t.pool != nil {
		// The pool dials on this connection's behalf when it has no idle
		// upstream connection, and says whose connection carried the request.
		ctx := context.WithValue(req.Context(), poolConnKey{}, t.c)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			t.c.noteReused(t.pool.owner(info.Conn))
		}})
		// Connection: close is hop-by-hop: it ends the client's connection
		// (goproxy still sees it on its own request), not the pooled
		// upstream one; the origin's own close is honoured.
		req = req.Clone(ctx)
		req.Close = false
		req.Header.Del("Connection")
	}
	if t.h2t == nil {
		resp, err = t.h1.RoundTrip(req)
	} else {
		var cc *http2.ClientConn
		if cc, err = t.h2Conn(req.Context()); err == nil {
			resp, err = cc.RoundTrip(req)
		}
	}
	if err != nil {
		if req.Context().Err() == nil { // not the client going away
			t.c.streamError(sideOrigin, err)
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols { // an upgraded body must stay writable
		resp.Body = &originBody{ReadCloser: resp.Body, c: t.c}
	}
	return resp, nil
}

// originBody notes an error reading a response from the origin (a reset
// mid-response) on the upstream leg.
type originBody struct {
	io.ReadCloser
	c *conn
}

func (b *originBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.c.streamError(sideOrigin, err)
	}
	return n, err
}

// h2Conn returns a usable HTTP/2 connection, dialling a new one when the
// origin closed the last (GOAWAY, idle timeout).
func (t *originTransport) h2Conn(ctx context.Context) (*http2.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h2.CanTakeNewRequest() {
		return t.h2, nil
	}
	up, err := t.dialMore(ctx, "h2")
	if err != nil {
		return nil, err
	}
	cc, err := t.h2t.NewClientConn(up.tls)
	if err != nil {
		return nil, err
	}
	t.h2 = cc
	return cc, nil
}

// dialTLS gives http.Transport the upstream connection, then new ones.
func (t *originTransport) dialTLS(ctx context.Context, _, _ string) (net.Conn, error) {
	t.mu.Lock()
	first := t.first
	t.first = nil
	t.mu.Unlock()
	if first != nil {
		return t.c.up.take(), nil
	}
	alpn := t.c.up.tls.ConnectionState().NegotiatedProtocol
	t.mu.Lock()
	defer t.mu.Unlock()
	up, err := t.dialMore(ctx, alpn)
	if err != nil {
		return nil, err
	}
	return up.tls, nil
}

// dialMore makes a further upstream connection for this client connection,
// speaking alpn, as the first one negotiated. t.mu is held.
func (t *originTransport) dialMore(ctx context.Context, alpn string) (*upstreamConn, error) {
	c := t.c
	offer := c.offer
	offer.alpn = nil
	if alpn != "" {
		offer.alpn = []string{alpn}
	}
	up, _, err := c.s.dialUpstream(ctx, c, offer)
	t.extra.Add(1)
	if err != nil {
		return nil, err
	}
	t.more = append(t.more, up)
	return up, nil
}

// close ends the transport's upstream connections.
func (t *originTransport) close() {
	if t.h1 != nil && t.pool == nil { // a pool's transport outlives its client connections
		t.h1.CloseIdleConnections()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h2 != nil {
		t.h2.Close()
	}
	for _, u := range t.more {
		u.tls.Close()
	}
	t.c.rec.UpstreamLeg.ExtraHandshakes = int(t.extra.Load())
	t.c.rec.UserAgent = t.ua
}

// ticketSip reads an idle upstream TLS 1.3 connection in the background
// until something takes it (upstreamConn.take), so crypto/tls processes the origin's
// NewSessionTicket messages meanwhile; application data read meanwhile (an
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
