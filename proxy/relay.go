package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/rs/zerolog"
)

// relay serves the HTTP inside intercepted tunnels with goproxy, and plain
// forward-proxy requests. It is the only part of tlsresume that imports
// goproxy. Two instances differ only in HTTP/2: goproxy's HTTP/1 MITM loop
// waits for 24 bytes to look for the h2c preface when HTTP/2 is allowed,
// which would stall a client whose first request is shorter, so h2 tunnels
// (ALPN h2) and the others are served by separate instances.
type relay struct {
	s      *Server
	h1, h2 *goproxy.ProxyHttpServer
}

type transportKey struct{}

func newRelay(s *Server) *relay {
	r := &relay{s: s}
	r.h1 = r.newGoproxy(false)
	r.h2 = r.newGoproxy(true)
	return r
}

func (r *relay) newGoproxy(h2 bool) *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{r.s.cfg.Log}
	gp.AllowHTTP2 = h2
	gp.KeepAcceptEncoding = true
	gp.KeepDestinationHeaders = true
	gp.Tr = &http.Transport{
		Proxy:                 nil, // never chain to the environment's proxy
		DialContext:           (&net.Dialer{Timeout: r.s.cfg.DialTimeout, Resolver: r.s.cfg.Resolver}).DialContext,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       r.s.cfg.IdleTimeout,
		DisableCompression:    true,
	}
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "tlsresume is a proxy: point a client's proxy setting at this address", http.StatusBadRequest)
	})
	// Every tunnel handed to goproxy is already decrypted by tlsresume, so
	// goproxy's MITM serves plain HTTP on it, through the tunnel's own
	// RoundTripper (one upstream connection per client connection).
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		t, _ := ctx.Req.Context().Value(transportKey{}).(*originTransport)
		if t == nil {
			return goproxy.RejectConnect, host
		}
		ctx.RoundTripper = t
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm}, host
	})
	return gp
}

// serveForward proxies a plain HTTP request (not CONNECT).
func (r *relay) serveForward(w http.ResponseWriter, req *http.Request) {
	r.h1.ServeHTTP(w, req)
}

// serveTLS hands an established client TLS connection to goproxy, or
// relays it as bytes when it does not carry HTTP.
func (r *relay) serveTLS(c *conn, tc *tls.Conn) {
	alpn := tc.ConnectionState().NegotiatedProtocol
	var client net.Conn = tc
	isHTTP := alpn == "h2" || alpn == "http/1.1"
	if alpn == "" {
		client, isHTTP = sniffHTTP(tc)
	}
	if !isHTTP && c.up == nil {
		// A pooled connection that speaks no HTTP: it needs an upstream
		// connection of its own to relay to.
		up, leg, err := r.s.dialUpstream(r.s.ctx, c, c.offer)
		c.notePoolDial(leg)
		if err != nil {
			c.streamError(sideOrigin, err)
			client.Close()
			c.finish()
			return
		}
		c.up = up
	}
	if !isHTTP {
		go func() {
			c.fail(pipe(client, c.up.take(), r.s.cfg.IdleTimeout, r.s.cfg.HalfCloseTimeout, nil))
		}()
		return
	}
	t, err := newOriginTransport(c)
	if err != nil {
		c.rec.Error = "starting HTTP/2 upstream: " + err.Error()
		client.Close()
		c.finish()
		return
	}
	gp := r.h1
	if alpn == "h2" {
		gp = r.h2
	}
	// goproxy is handed the tunnel as the CONNECT it would have read itself.
	req := (&http.Request{
		Method: http.MethodConnect, URL: &url.URL{Host: c.rec.Target}, Host: c.rec.Target,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, RemoteAddr: c.rec.ClientAddr,
	}).WithContext(context.WithValue(r.s.ctx, transportKey{}, t))
	gp.ServeHTTP(&hijackedWriter{conn: &handoffConn{Conn: client, t: t}}, req)
}

// sniffHTTP reads the first bytes of a tunnel without ALPN to tell HTTP
// from another protocol; a server-speaks-first protocol sends nothing, so
// after a short wait it is relayed as bytes.
func sniffHTTP(tc *tls.Conn) (net.Conn, bool) {
	br := bufio.NewReader(tc)
	tc.SetReadDeadline(time.Now().Add(2 * time.Second))
	first, _ := br.Peek(4)
	tc.SetReadDeadline(time.Time{})
	bc := &bufferedConn{Conn: tc, r: br}
	return bc, looksLikeHTTPRequest(first)
}

func looksLikeHTTPRequest(b []byte) bool {
	for _, m := range []string{"GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC", "TRAC", "CONN"} {
		if len(b) >= 4 && string(b[:4]) == m {
			return true
		}
	}
	return false
}

// hijackedWriter is the http.ResponseWriter goproxy is handed for a
// tunnel: goproxy hijacks it at once to run its MITM loop on the conn.
type hijackedWriter struct {
	conn   net.Conn
	header http.Header
}

func (w *hijackedWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}
func (w *hijackedWriter) Write(b []byte) (int, error) { return w.conn.Write(b) }
func (w *hijackedWriter) WriteHeader(int)             {}
func (w *hijackedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(eofReader{}), bufio.NewWriter(w.conn)), nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// handoffConn is the decrypted client stream as goproxy sees it. tlsresume
// already answered the CONNECT with 200 before peeking the hello, so the
// 200 line goproxy writes after hijacking (https.go, ConnectMitm) is
// dropped. Close ends the tunnel and completes the connection's record.
type handoffConn struct {
	net.Conn
	t         *originTransport
	swallowed bool
	closed    sync.Once
}

// Read ends a tunnel whose client stays silent past the idle timeout.
func (h *handoffConn) Read(b []byte) (int, error) {
	h.Conn.SetReadDeadline(time.Now().Add(h.t.c.s.cfg.IdleTimeout))
	n, err := h.Conn.Read(b)
	if err != nil {
		h.t.c.streamError(sideClient, err)
	}
	return n, err
}

func (h *handoffConn) Write(b []byte) (int, error) {
	if !h.swallowed {
		h.swallowed = true
		if len(b) >= 12 && string(b[:7]) == "HTTP/1." && string(b[9:12]) == "200" {
			return len(b), nil
		}
	}
	n, err := h.Conn.Write(b)
	if err != nil {
		h.t.c.streamError(sideClient, err)
	}
	return n, err
}

func (h *handoffConn) Close() error {
	h.closed.Do(func() {
		lingerClose(h.Conn, h.t.c.s.cfg.Linger)
		h.t.close()
		h.t.c.finish()
	})
	return nil
}

// bufferedConn reads through a bufio.Reader that already holds bytes.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the connection when it can.
func (b *bufferedConn) CloseWrite() error { return closeWrite(b.Conn) }

// lingerClose ends a client connection politely: it says it is done
// writing (a TLS close_notify), then reads, for at most d, what the client
// still sends (its own close_notify) before closing. Closing at once would
// make the kernel answer those bytes with a reset, and they would be
// missing from bytes_up.
func lingerClose(c net.Conn, d time.Duration) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.SetReadDeadline(time.Now().Add(d))
		io.Copy(io.Discard, c)
	}
	c.Close()
}

// goproxyLogger sends goproxy's messages to the debug log: they repeat
// what tlsresume records (closed connections, failed reads).
type goproxyLogger struct{ log zerolog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	l.log.Debug().Str("from", "goproxy").Msg(fmt.Sprintf(format, v...))
}
