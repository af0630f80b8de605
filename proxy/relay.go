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

// relay serves the HTTP inside intercepted connections with goproxy, and plain
// forward-proxy requests. It is the only part of tlsresume that imports
// goproxy. Two instances differ only in HTTP/2: goproxy's HTTP/1 MITM loop
// waits for 24 bytes to look for the h2c preface when HTTP/2 is allowed,
// which would stall a client whose first request is shorter, so h2 connections
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
	// Every connection handed to goproxy is already decrypted by tlsresume,
	// so goproxy's MITM serves plain HTTP on it, through the connection's own
	// RoundTripper (one upstream connection per client connection).
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		t, _ := ctx.Req.Context().Value(transportKey{}).(*relayTransport)
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

// relay is the path's sixth step: it serves the HTTP inside the client's
// TLS through goproxy, request by request, over the upstream leg's
// transport, or relays the bytes of a client that speaks another
// protocol. It returns when the client's connection ends.
func (c *conn) relay(tc *tls.Conn) error {
	s := c.s
	alpn := tc.ConnectionState().NegotiatedProtocol
	var client net.Conn = tc
	isHTTP := alpn == "h2" || alpn == "http/1.1"
	if alpn == "" {
		client, isHTTP = sniffHTTP(tc)
	}
	if !isHTTP {
		up, err := c.up.stream()
		if err != nil {
			return err
		}
		return pipe(client, up, s.cfg.IdleTimeout, s.cfg.HalfCloseTimeout, nil)
	}
	rt, err := c.up.transport()
	if err != nil {
		return fmt.Errorf("starting HTTP/2 upstream: %w", err)
	}
	gp := s.relay.h1
	if alpn == "h2" {
		gp = s.relay.h2
	}
	// goproxy is handed the decrypted stream as a CONNECT that arrived over
	// HTTP/2 (RFC 8441): goproxy serves such a tunnel's requests in the
	// handler itself (https.go, isH2Tunnel), reading the request body and
	// writing the response, so the relay ends here when the client's
	// connection does.
	stream := &clientStream{Conn: client, c: c}
	req := (&http.Request{
		Method: http.MethodConnect, URL: &url.URL{Host: c.rec.Target}, Host: c.rec.Target,
		Proto: "HTTP/2.0", ProtoMajor: 2, Header: http.Header{}, RemoteAddr: c.rec.ClientAddr, Body: stream,
	}).WithContext(context.WithValue(s.ctx, transportKey{}, &relayTransport{c: c, rt: rt}))
	gp.ServeHTTP(&streamWriter{stream: stream}, req)
	stream.Close()
	return nil
}

// relayTransport is goproxy's RoundTripper for one client connection:
// every request goes to the connection's target over the upstream leg's
// transport, and what it says of the client or the origin is noted.
type relayTransport struct {
	c  *conn
	rt http.RoundTripper
}

func (t *relayTransport) RoundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	t.c.noteRequest(req.Header.Get("User-Agent"))
	req.URL.Scheme = "https"
	req.URL.Host = t.c.rec.Target
	resp, err := t.rt.RoundTrip(req)
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

// clientStream is the decrypted client stream as goproxy reads it (the
// CONNECT's body) and writes it (through streamWriter). Close ends the
// client's connection politely.
type clientStream struct {
	net.Conn
	c      *conn
	closed sync.Once
}

// Read ends a connection whose client stays silent past the idle timeout.
func (h *clientStream) Read(b []byte) (int, error) {
	h.Conn.SetReadDeadline(time.Now().Add(h.c.s.cfg.IdleTimeout))
	n, err := h.Conn.Read(b)
	if err != nil {
		h.c.streamError(sideClient, err)
	}
	return n, err
}

func (h *clientStream) Write(b []byte) (int, error) {
	n, err := h.Conn.Write(b)
	if err != nil {
		h.c.streamError(sideClient, err)
	}
	return n, err
}

func (h *clientStream) Close() error {
	h.closed.Do(func() { lingerClose(h.Conn, h.c.s.cfg.Linger) })
	return nil
}

// streamWriter is the http.ResponseWriter of the CONNECT goproxy is
// handed: the status line is tlsresume's (answered before the hello was
// peeked), and what goproxy writes goes to the client's stream.
type streamWriter struct {
	stream *clientStream
	header http.Header
}

func (w *streamWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}
func (w *streamWriter) Write(b []byte) (int, error)        { return w.stream.Write(b) }
func (w *streamWriter) WriteHeader(int)                    {}
func (w *streamWriter) Flush()                             {}
func (w *streamWriter) SetReadDeadline(t time.Time) error  { return w.stream.SetReadDeadline(t) }
func (w *streamWriter) SetWriteDeadline(t time.Time) error { return w.stream.SetWriteDeadline(t) }

// sniffHTTP reads the first bytes of a connection without ALPN to tell HTTP
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
