package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// connListener hands decrypted client connections to the HTTP/1.1 server
// that serves them (relay.h1): its Accept returns each connection the relay
// step hands it.
type connListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives c to the server; false when the listener is closed.
func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return connsAddr{} }

type connsAddr struct{}

func (connsAddr) Network() string { return "intercepted" }
func (connsAddr) String() string  { return "intercepted connections" }

// handoffConn is the decrypted client stream as the HTTP servers see it.
// Read ends a connection whose client stays silent past the idle timeout,
// errors are noted on the client leg, and Close ends the connection and
// tells the relay step, which waits for it (done).
//
// While net/http answers an HTTP/1.1 request whose body it has read, it
// reads one byte from the client in the background, takes a timeout or an
// EOF then for the client gone and cancels the request, and interrupts the
// read with a deadline in the past once the answer is done (server.go,
// connReader.backgroundRead, abortPendingRead). But a client being
// answered is silent, and may have said it is done sending: an HTTP/1.0
// tool shuts its side (a TLS close_notify) once its request is out. So
// that read is not held to the idle timeout, and an EOF is held back from
// it until the server interrupts it. It is told by its length, one byte,
// while the connection is active (net/http's ConnState: from a request
// read to its answer done, a span in which net/http reads everything else,
// a request body, through a 4 KiB buffer). Every other read, a request
// body's included, is held to the idle timeout.
type handoffConn struct {
	net.Conn
	c        *conn
	rt       *relayTransport // goproxy's RoundTripper for the connection's requests
	h1       bool            // served by relay.h1, not x/net/http2
	done     chan struct{}   // closed by Close
	mu       sync.Mutex
	deadline time.Time     // the read deadline the server set, if any
	aborted  chan struct{} // closed when the server sets a deadline in the past, for a held EOF
	active   bool          // HTTP/1.1: net/http's ConnState is StateActive
	serving  int           // requests being answered (relay.serveRequest)
	head     []byte        // HTTP/1.1: what was read since the last answer, a request's head (headRead)
	closed   sync.Once
}

// connState follows net/http's ConnState for an HTTP/1.1 connection.
func connState(c net.Conn, st http.ConnState) {
	if h, ok := c.(*handoffConn); ok && h.h1 {
		h.mu.Lock()
		h.active = st == http.StateActive
		h.mu.Unlock()
	}
}

// SetReadDeadline keeps the server's deadline, which Read honours when it
// is sooner than the idle timeout. It also applies it at once: net/http
// interrupts a pending background read with a deadline in the past
// (server.go, abortPendingRead), and mu orders this against Read's own.
func (h *handoffConn) SetReadDeadline(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deadline = t
	if h.aborted != nil && !t.IsZero() && t.Before(time.Now()) {
		close(h.aborted)
		h.aborted = nil
	}
	return h.Conn.SetReadDeadline(t)
}

func (h *handoffConn) SetDeadline(t time.Time) error {
	if err := h.SetReadDeadline(t); err != nil {
		return err
	}
	return h.Conn.SetWriteDeadline(t)
}

func (h *handoffConn) Read(b []byte) (int, error) {
	h.mu.Lock()
	background := len(b) == 1 && h.active
	h.mu.Unlock()
	for {
		idle := h.armDeadline()
		n, err := h.Conn.Read(b)
		h.headRead(b[:n])
		if background && n == 0 && idle && isTimeout(err) {
			continue // silent because it is being answered
		}
		if background && n == 0 && err == io.EOF {
			err = h.holdEOF()
		}
		if err != nil {
			h.c.streamError(sideClient, err)
		}
		return n, err
	}
}

// armDeadline sets the read deadline: the server's, or the idle timeout
// when that is sooner; idle says which.
func (h *handoffConn) armDeadline() (idle bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := time.Now().Add(h.c.s.cfg.IdleTimeout)
	if !h.deadline.IsZero() && h.deadline.Before(d) {
		d = h.deadline
	} else {
		idle = true
	}
	h.Conn.SetReadDeadline(d)
	return idle
}

// holdEOF waits until the server interrupts its background read, and
// returns the timeout it expects then; or until the proxy stops.
func (h *handoffConn) holdEOF() error {
	h.mu.Lock()
	if !h.deadline.IsZero() && h.deadline.Before(time.Now()) {
		h.mu.Unlock()
		return os.ErrDeadlineExceeded
	}
	if h.aborted == nil {
		h.aborted = make(chan struct{})
	}
	aborted := h.aborted
	h.mu.Unlock()
	select {
	case <-aborted:
		return os.ErrDeadlineExceeded
	case <-h.c.s.ctx.Done():
		return io.EOF
	}
}

// begin and end bracket the answer to one request.
func (h *handoffConn) begin() {
	h.mu.Lock()
	h.serving++
	h.head = h.head[:0]
	if cap(h.head) > 4<<10 {
		h.head = nil // not kept for the connection's life
	}
	h.mu.Unlock()
}

func (h *handoffConn) end() {
	h.mu.Lock()
	h.serving--
	h.mu.Unlock()
}

// headRead keeps what is read while no request is being answered: the
// head of the request net/http is reading (at most as much as it reads
// before it refuses one as too large), for noteRefusal.
func (h *handoffConn) headRead(b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.h1 && h.serving == 0 {
		h.head = append(h.head, b[:min(len(b), max(0, maxHeaderBytes+4<<10-len(h.head)))]...)
	}
}

// noteRefusal notes, on the client leg and in the debug log, a request
// net/http refused (431, 400) before any handler saw it: the only answer
// written while no request is being answered is the server's own error
// reply (net/http server.go, conn.serve), which says too little (a bare
// "400 Bad Request"). Reading the head it refused again says why
// (textproto's "malformed MIME header line: …", the line quoted).
func (h *handoffConn) noteRefusal(b []byte) {
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 4")) && !bytes.HasPrefix(b, []byte("HTTP/1.1 5")) {
		return
	}
	h.mu.Lock()
	if !h.h1 || h.serving > 0 {
		h.mu.Unlock()
		return
	}
	head := h.head
	h.mu.Unlock()
	status, _, _ := strings.Cut(string(b[len("HTTP/1.1 "):min(len(b), 200)]), "\r\n")
	why := "tlsresume refused the client's request: " + status
	if strings.HasPrefix(status, "400") {
		if _, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err != nil {
			why += ": " + err.Error()
		}
	}
	why = inspect.Cut(why, inspect.MaxTextLen)
	c := h.c
	c.streamError(sideClient, errors.New(why))
	c.s.cfg.Log.Debug().Str("conn_id", c.rec.ID).Msg(why)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (h *handoffConn) Write(b []byte) (int, error) {
	h.noteRefusal(b)
	n, err := h.Conn.Write(b)
	if err != nil {
		h.c.streamError(sideClient, err)
	}
	return n, err
}

func (h *handoffConn) Close() error {
	h.closed.Do(func() {
		lingerClose(h.Conn, h.c.s.cfg.Linger)
		close(h.done)
	})
	return nil
}

// relayWriter is the http.ResponseWriter goproxy writes an intercepted
// connection's response to. It keeps the response as the origin sent it: net/http and
// x/net/http2 would add a Date and a sniffed Content-Type the origin did
// not send. It flushes each write of a response of unknown length
// (chunked, streamed) and of server-sent events as it comes, as
// httputil.ReverseProxy does. And it keeps a hijacked connection (an
// Upgrade) for the handler to close once goproxy is done with it.
type relayWriter struct {
	http.ResponseWriter
	wrote    bool
	flush    bool
	hijacked net.Conn
}

func (w *relayWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	h := w.Header()
	for _, k := range []string{"Date", "Content-Type"} {
		if _, ok := h[k]; !ok {
			h[k] = nil // suppresses the server's own (net/http, ResponseWriter docs)
		}
	}
	ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	w.flush = h.Get("Content-Length") == "" || ct == "text/event-stream"
	w.ResponseWriter.WriteHeader(code)
}

func (w *relayWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	n, err := w.ResponseWriter.Write(b)
	if err == nil && w.flush {
		w.Flush()
	}
	return n, err
}

// ReadFrom copies a response body through a buffer shared between
// responses: goproxy's io.Copy would otherwise allocate 32 KiB for every
// response, since relayWriter hides net/http's own ReadFrom.
func (w *relayWriter) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	return io.CopyBuffer(writerOnly{w}, r, *bp)
}

// writerOnly hides ReadFrom, so io.CopyBuffer uses the buffer it is given.
type writerOnly struct{ io.Writer }

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (w *relayWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *relayWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	c, rw, err := hj.Hijack()
	if err == nil {
		w.hijacked = c
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *relayWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
