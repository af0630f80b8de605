package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/inspect"
	"golang.org/x/net/http2"
)

// maxHeaderBytes bounds the header section of every request tlsresume
// reads: the CONNECT request, a forward-proxy request, and each request
// inside an intercepted connection, HTTP/1.1 or h2. Go's servers allow
// 1 MiB unless told; nginx allows 4 × 8 KiB by default and Node.js 16 KiB.
// Past it, a client is answered 431 Request Header Fields Too Large
// (net/http reads up to 4 KiB more before it can tell: server.go,
// initialReadLimitSize); an h2 client that sends a single field longer
// than the limit, or floods past it, loses the connection instead (x/net/
// http2 frame.go, readMetaFrame).
const maxHeaderBytes = 64 << 10

// relay serves the HTTP inside intercepted connections, and plain
// forward-proxy requests. Go's own servers read every request, within
// maxHeaderBytes: net/http for HTTP/1.1 (one http.Server, handed each
// connection through connListener), x/net/http2 for h2, and net/http for
// the forward-proxy listeners. They answer an oversized header section 431
// and a malformed one 400, where goproxy's own loop read requests without
// a limit (http.ReadRequest) and closed the connection without a word on a
// bad one. goproxy proxies each request, as the http.Handler it is good
// at; an intercepted connection's requests go to its origin over its
// upstream leg's transport (relayTransport). It is the only part of
// tlsresume that imports goproxy.
type relay struct {
	s        *Server
	gp       *goproxy.ProxyHttpServer
	h1       *http.Server
	h2       *http2.Server
	ln       *connListener
	starting sync.Once
	serving  sync.WaitGroup
}

// clientConnKey is the context key of the handoffConn a request was read
// from.
type clientConnKey struct{}

func newRelay(s *Server) *relay {
	r := &relay{s: s, ln: newConnListener()}
	r.gp = r.newGoproxy()
	r.h1 = &http.Server{
		Handler:        http.HandlerFunc(r.serveRequest),
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       httpErrorLog(s.cfg.Log),
		BaseContext:    func(net.Listener) context.Context { return s.ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, clientConnKey{}, c)
		},
		ConnState: connState,
	}
	r.h2 = &http2.Server{}
	return r
}

func (r *relay) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{r.s.cfg.Log}
	gp.KeepAcceptEncoding = true
	gp.KeepDestinationHeaders = true
	gp.Tr = &http.Transport{
		Proxy:                 nil, // never chain to the environment's proxy
		DialContext:           r.s.dialer().DialContext,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       r.s.cfg.IdleTimeout,
		DisableCompression:    true,
	}
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "tlsresume is a proxy: point a client's proxy setting at this address", http.StatusBadRequest)
	})
	// A request read from an intercepted connection goes over that
	// connection's upstream leg (relayTransport).
	gp.OnRequest().DoFunc(func(req *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		if hc, ok := req.Context().Value(clientConnKey{}).(*handoffConn); ok {
			ctx.RoundTripper = hc.rt
		}
		return req, nil
	})
	gp.OnResponse().DoFunc(func(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
		if resp == nil && ctx.Error != nil {
			// A request that reached no origin is answered 502 with the
			// reason on one line (goproxy's own answer is a 500 quoting
			// the error as is).
			msg := "tlsresume: " + inspect.Printable(inspect.Cut(ctx.Error.Error(), inspect.MaxTextLen)) + "\n"
			return goproxy.NewResponse(ctx.Req, goproxy.ContentTypeText, http.StatusBadGateway, msg)
		}
		_, intercepted := ctx.Req.Context().Value(clientConnKey{}).(*handoffConn)
		if resp != nil && resp.Close && intercepted && ctx.Req.ProtoMajor == 1 {
			// An origin that closes its connection after the response
			// closes the client's too, as it would directly (a browser
			// then opens a new connection, which may resume). net/http
			// moved its "Connection: close" to resp.Close (transfer.go).
			resp.Header.Set("Connection", "close")
		}
		return resp
	})
	return gp
}

// serveForward proxies a plain HTTP request (not CONNECT), unless it would
// reach tlsresume itself.
func (r *relay) serveForward(w http.ResponseWriter, req *http.Request) {
	port := "80"
	if req.URL.Scheme == "https" {
		port = "443"
	}
	if err := r.s.refuseLoop(req.Context(), req.URL.Host, port); err != nil {
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	r.gp.ServeHTTP(w, req)
}

// relay is the path's sixth step: it serves the HTTP inside the client's
// TLS, request by request, over the upstream leg's transport, or relays
// the bytes of a client that speaks another protocol. It returns when the
// client's connection ends.
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
	hc := &handoffConn{Conn: client, c: c, rt: &relayTransport{c: c, rt: rt}, h1: alpn != "h2", done: make(chan struct{})}
	s.relay.serve(hc)
	return nil
}

// serve serves hc's requests until the client's connection ends.
func (r *relay) serve(hc *handoffConn) {
	defer hc.Close()
	if !hc.h1 {
		// BaseConfig carries maxHeaderBytes: x/net/http2 advertises it
		// (SETTINGS_MAX_HEADER_LIST_SIZE) and answers 431 past it.
		r.h2.ServeConn(hc, &http2.ServeConnOpts{
			Context: context.WithValue(r.s.ctx, clientConnKey{}, hc), Handler: r.h1.Handler, BaseConfig: r.h1,
		})
		return
	}
	r.starting.Do(func() {
		r.serving.Add(1)
		go func() {
			defer r.serving.Done()
			r.h1.Serve(r.ln)
		}()
	})
	if r.ln.hand(hc) {
		// net/http serves it on a goroutine of its own and closes it at
		// the end; the path waits for that.
		<-hc.done
	}
}

// close stops the HTTP/1.1 server of intercepted connections and waits for
// it; every connection has ended by now (Shutdown waited for them, or
// closed them).
func (r *relay) close(ctx context.Context) {
	r.ln.Close()
	if err := r.h1.Shutdown(ctx); err != nil {
		r.h1.Close()
	}
	r.serving.Wait()
}

// serveRequest proxies one request read from an intercepted connection to
// its origin.
func (r *relay) serveRequest(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodConnect {
		http.Error(w, "tlsresume: CONNECT inside an intercepted connection is not relayed", http.StatusMethodNotAllowed)
		return
	}
	req.URL.Scheme = "https" // the origin is the connection's (relayTransport.RoundTrip)
	if req.URL.Host == "" {
		req.URL.Host = req.Host
	}
	if req.ProtoMajor == 2 && req.ContentLength == 0 {
		// x/net/http2 gives a request without a body a Body all the same,
		// which the upstream transport would send as one of unknown length.
		req.Body = http.NoBody
	}
	hc := req.Context().Value(clientConnKey{}).(*handoffConn)
	hc.begin()
	defer hc.end()
	rw := &relayWriter{ResponseWriter: w}
	r.gp.ServeHTTP(rw, req)
	if rw.hijacked != nil {
		rw.hijacked.Close() // an upgraded connection goproxy relayed to its end
	}
}

// relayTransport is goproxy's RoundTripper for one client connection:
// every request goes to the connection's target over the upstream leg's
// transport, and what it says of the client or the origin is noted.
type relayTransport struct {
	c  *conn
	rt http.RoundTripper
}

func (t *relayTransport) RoundTrip(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	c := t.c
	i := c.noteRequest(req)
	start := c.s.cfg.Now()
	req.URL.Scheme = "https"
	req.URL.Host = c.rec.Target
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		if req.Context().Err() == nil { // not the client going away
			c.streamError(sideOrigin, err)
		}
		c.noteAnswer(i, 0, c.s.cfg.Now().Sub(start))
		return nil, err
	}
	c.noteAnswer(i, resp.StatusCode, c.s.cfg.Now().Sub(start))
	if resp.StatusCode != http.StatusSwitchingProtocols { // an upgraded body must stay writable
		resp.Body = &originBody{ReadCloser: resp.Body, c: c, req: i}
	}
	return resp, nil
}

// originBody counts a response's body for its request's record, and notes
// an error reading it from the origin (a reset mid-response) on the
// upstream leg.
type originBody struct {
	io.ReadCloser
	c      *conn
	req    int   // its request's place in the record, or -1
	n      int64 // bytes read
	closed bool
}

func (b *originBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err != nil {
		b.c.streamError(sideOrigin, err)
	}
	return n, err
}

func (b *originBody) Close() error {
	if !b.closed {
		b.closed = true
		b.c.noteBody(b.req, b.n)
	}
	return b.ReadCloser.Close()
}

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

// goproxyLogger sends goproxy's messages to the debug log: they repeat
// what tlsresume records (closed connections, failed reads).
type goproxyLogger struct{ log zerolog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	l.log.Debug().Str("from", "goproxy").Msg(fmt.Sprintf(format, v...))
}
