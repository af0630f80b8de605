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

// handleConnect takes over a CONNECT request: answer 200, then intercept
// the tunnel like any other arrival.
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
	c := s.newConn(raw, inspect.SourceConnect, r.Host)
	raw.SetDeadline(time.Time{})
	if _, err := io.WriteString(raw, connectOK); err != nil {
		c.fail(fmt.Errorf("writing the CONNECT reply: %w", err))
		return
	}
	if isMagic(r.Host) {
		s.serveMagicTLS(c, &replayConn{Conn: raw, pending: bufferedBytes(brw.Reader)})
		return
	}
	c.pre = s.startPredial(c.dialAddr())
	// From here on, every way of arriving takes the same path, in a
	// goroutine of its own: the handler returns, so net/http lets go of
	// its per-connection buffers and response state for the connection's
	// life (about 10 KB a connection; s.track keeps it counted).
	go s.intercept(c, brw.Reader)
}

// offeredALPN is what tlsresume offers upstream: the client's ALPN list,
// in its order, limited to what goproxy can serve — or the client's whole
// list when it offers none of those (the tunnel is then relayed as bytes).
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

// bufferedBytes returns what br holds without reading further.
func bufferedBytes(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}
