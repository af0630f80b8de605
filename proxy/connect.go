package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

const connectOK = "HTTP/1.1 200 Connection established\r\n\r\n"

// handleConnect takes over a CONNECT request: answer 200, then hand the
// tunnel to the main path like any other arrival.
func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot take over this connection", http.StatusInternalServerError)
		return
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	if !s.track(raw) {
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	a := arrival{conn: raw, read: bufferedBytes(brw.Reader), target: r.Host, source: inspect.SourceConnect}
	if _, err := io.WriteString(raw, connectOK); err != nil {
		a.err = fmt.Errorf("writing the CONNECT reply: %w", err)
	} else if isMagic(r.Host) {
		s.serveMagicTLS(raw, a.read)
		return
	}
	// The handler returns, so net/http lets go of its per-connection
	// buffers and response state for the connection's life (about 10 KB a
	// connection; s.track keeps it counted).
	go s.serve(a)
}

// bufferedBytes returns what br holds without reading further.
func bufferedBytes(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}
