package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// conn is one intercepted client connection, from CONNECT to close.
type conn struct {
	s            *Server
	rec          *ConnRecord
	start        time.Time
	client       *countingConn  // the hijacked client connection
	replayed     int            // bytes read from the client before TLS (the peeked hello)
	origDst      netip.AddrPort // transparent mode: where the client was going
	offer        upstreamOffer  // what the upstream leg offered for this client
	pre          *predial       // the destination, dialled while the hello arrives
	originOpened bool           // counted in memory.openOrigin, to be closed once
	tunnelled    bool           // not TLS: relayed untouched
	up           *upstreamConn
	clientLeg    *ClientLeg
	facts        verdictFacts
	finished     sync.Once
}

// originKey names the origin as the upstream cache does: SNI and address.
func (c *conn) originKey() string { return c.rec.SNI + "|" + c.rec.Target }

// clientKey names a client program on a device, and the host it talks to:
// the client's IP and its JA4 tell apart two programs on one device.
func (c *conn) clientKey() string {
	host, _, _ := net.SplitHostPort(c.rec.ClientAddr)
	return host + "|" + c.rec.ClientHello.JA4 + "|" + c.rec.SNI + "|" + c.rec.Target
}

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
	c := s.newConn(raw, "connect", r.Host)
	raw.SetDeadline(time.Time{})
	if _, err := io.WriteString(raw, connectOK); err != nil {
		c.fail("writing CONNECT reply: " + err.Error())
		return
	}
	if isMagic(r.Host) {
		s.serveMagicTLS(c, &replayConn{Conn: raw, pending: bufferedBytes(brw.Reader)})
		return
	}
	c.pre = s.startPredial(c.dialAddr())
	// From here on, every way of arriving takes the same path.
	s.intercept(c, brw.Reader)
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

// tunnel relays a non-TLS CONNECT payload untouched, and records it.
func (s *Server) tunnel(c *conn, replay []byte, why error) {
	c.rec.Error = why.Error()
	c.tunnelled = true
	up, err := s.dialTCP(context.Background(), c)
	if err != nil {
		c.fail("dial " + c.rec.Target + ": " + err.Error())
		return
	}
	if ap, err := netip.ParseAddrPort(up.RemoteAddr().String()); err == nil && s.isSelf(ap) {
		up.Close()
		c.fail("refusing to tunnel to tlsresume's own listener (a loop)")
		return
	}
	ucc := &countingConn{Conn: up}
	c.up = &upstreamConn{raw: ucc}
	go func() {
		pipe(&replayConn{Conn: c.client, pending: replay}, ucc, s.cfg.HalfCloseTimeout, nil)
		c.finish()
	}()
}

// fail ends a connection that could not be intercepted, with an error.
func (c *conn) fail(msg string) {
	if msg != "" {
		c.rec.Error = msg
	}
	c.finish()
}

// finish closes both sides, completes the record and emits it, once.
func (c *conn) finish() {
	c.finished.Do(func() {
		s := c.s
		c.pre.discard()
		c.client.Close()
		if c.up != nil {
			if c.up.tls != nil {
				c.up.tls.Close()
			} else {
				c.up.raw.Close()
			}
		}
		r := c.rec
		r.BytesUp = int64(c.replayed) + c.client.read.Load()
		r.BytesDown = c.client.written.Load()
		r.DurationMS = ms(s.cfg.Now().Sub(c.start))
		if c.up != nil && c.up.view != nil && r.UpstreamLeg != nil {
			r.UpstreamLeg.TicketsReceived = c.up.view.Stored()
		}
		if c.originOpened {
			tickets := 0
			if r.UpstreamLeg != nil {
				tickets = r.UpstreamLeg.TicketsReceived
			}
			if r.UpstreamLeg != nil && r.UpstreamLeg.Error == "" && c.up.ticketsKnown() {
				s.origins.closeOrigin(c.originKey(), tickets)
			} else {
				s.origins.abandonOrigin(c.originKey())
			}
		}
		if r.ClientLeg != nil && r.ClientLeg.TicketsSent > 0 {
			s.origins.addClientTicket(c.clientKey())
		}
		c.facts.tunnelled = c.tunnelled
		decide(r, c.facts)
		s.emit(r)
		s.untrack(c.client.Conn)
	})
}

// replayConn reads the bytes peeked before TLS, then the connection.
type replayConn struct {
	net.Conn
	pending []byte
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(b, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

// CloseWrite half-closes the connection when it can.
func (r *replayConn) CloseWrite() error { return closeWrite(r.Conn) }
