package proxy

import (
	"crypto/tls"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// maxTap bounds how many bytes of each direction of a passed-through
// connection are read for handshake facts; the rest only flows.
const maxTap = 256 << 10

// passthroughReason says why a connection must not be intercepted, or "".
func (s *Server) passthroughReason(c *conn) string {
	ch := c.rec.ClientHello
	if ch.EarlyData {
		// crypto/tls aborts any TCP ClientHello offering early_data
		// (handshake_server_tls13.go: "client sent unexpected early data").
		return "the client offered early_data (0-RTT), which Go's TLS server refuses"
	}
	host := c.serverName()
	for _, p := range s.cfg.Passthrough {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(host)); ok {
			return "matches --passthrough " + p
		}
	}
	if from, ok := s.autoPass.get(host); ok {
		return fmt.Sprintf("--auto-passthrough: a client rejected tlsresume's certificate for %s (connection %s)", host, from)
	}
	return ""
}

// sessionIDReason says why a connection is passed through because its
// client can resume only by session ID, or "". A TLS 1.2 handshake without
// the session_ticket extension resumes only by session ID (RFC 5246,
// Section 7.4.1.2; RFC 5077, Section 3.1), and Go's TLS server keeps no
// session cache and never issues an ID (crypto/tls/handshake_server.go):
// intercepted, such a client never resumes, while directly it may. Passed
// through, the real server resumes it as it would directly. negotiated is
// the origin's version once tlsresume's upstream handshake made it known,
// else 0.
func (s *Server) sessionIDReason(c *conn, negotiated uint16) string {
	ch := c.rec.ClientHello
	if s.cfg.SessionIDClients != "passthrough" || ch.SessionTicket.Offered {
		return ""
	}
	const mode = " (--session-id-clients passthrough: the real server resumes it as it would directly; its HTTP is not seen)"
	switch {
	case ch.Attempt == inspect.AttemptSessionID:
		return "the client offers a session ID the server issued" + mode
	case inspect.MaxVersion(ch) <= int(inspect.VersionTLS12):
		return "a TLS 1.2 client without the session_ticket extension resumes only by session ID, which Go's TLS server cannot" + mode
	case negotiated != 0 && negotiated <= tls.VersionTLS12:
		return "the origin speaks TLS 1.2 and the client sends no session_ticket extension: it resumes only by session ID, which Go's TLS server cannot" + mode
	}
	return ""
}

// dropUpstream gives up the upstream connection made for interception.
func (c *conn) dropUpstream() {
	c.up.close()
	c.up, c.rec.UpstreamLeg = nil, nil
	if c.originOpened {
		c.s.origins.abandonOrigin(c.origin)
		c.originOpened = false
	}
}

// relayUntouched relays a connection whose payload is not TLS (why says
// what it is) untouched, and records it.
func (s *Server) relayUntouched(c *conn, replay []byte, why error) {
	c.err = why
	c.tunnelled = true
	c.open()
	up, err := s.dialTCP(s.ctx, c)
	if err != nil {
		c.fail(fmt.Errorf("dial %s: %w", c.dialAddr(), err))
		return
	}
	if s.isSelfAddr(up.RemoteAddr()) {
		up.Close()
		c.fail(errLoop)
		return
	}
	ucc := &countingConn{Conn: up}
	c.up = &upstreamConn{raw: ucc}
	go func() {
		c.fail(pipe(&replayConn{Conn: c.client, pending: replay}, ucc, s.cfg.IdleTimeout, s.cfg.HalfCloseTimeout, nil))
	}()
}

// passthrough relays the connection untouched and still reads both sides'
// hellos (package inspect), so the record says whether the real server
// resumed the client: the only honest view of a client that pins
// certificates and will never trust tlsresume's CA.
func (s *Server) passthrough(c *conn, replay []byte, why string) {
	c.rec.Passthrough = why
	up, err := s.dialTCP(s.ctx, c)
	if err != nil {
		c.fail(fmt.Errorf("dial %s: %w", c.dialAddr(), err))
		return
	}
	ucc := &countingConn{Conn: up}
	c.up = &upstreamConn{raw: ucc}
	c.rec.ServerAddr = up.RemoteAddr().String()
	t := &tap{conv: &inspect.Conversation{
		// History is keyed by the address dialled, as intercept asks it.
		Source: c.rec.Source, ClientAddr: c.rec.ClientAddr, ServerAddr: c.dialAddr(), History: s.history,
	}}
	t.conv.Emit = func(r *inspect.Record) {
		if c.rec.ServerHello == nil || c.rec.ServerHello.HRR {
			c.rec.ServerHello = r.ServerHello
		}
	}
	t.feed(true, replay)
	if _, err := ucc.Write(replay); err != nil {
		c.fail(fmt.Errorf("writing the ClientHello upstream: %w", err))
		return
	}
	go func() {
		err := pipe(c.client, ucc, s.cfg.IdleTimeout, s.cfg.HalfCloseTimeout, t.feed)
		t.close()
		c.fail(err)
	}()
}

// tap feeds the first bytes of both directions to a Conversation.
type tap struct {
	mu   sync.Mutex
	conv *inspect.Conversation
	fed  [2]int
}

func (t *tap) feed(fromClient bool, b []byte) {
	i := 0
	if !fromClient {
		i = 1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fed[i] >= maxTap || len(b) == 0 {
		return
	}
	b = b[:min(len(b), maxTap-t.fed[i])]
	t.fed[i] += len(b)
	if fromClient {
		t.conv.Client(b, time.Now(), 0)
	} else {
		t.conv.Server(b, time.Now(), 0)
	}
}

func (t *tap) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conv.Close()
}

// passSet remembers hosts to pass through, and the connection that decided it.
type passSet struct {
	mu    sync.Mutex
	hosts map[string]string
}

func (p *passSet) add(host, connID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hosts == nil || len(p.hosts) >= maxMemory {
		p.hosts = map[string]string{}
	}
	if _, ok := p.hosts[host]; !ok {
		p.hosts[host] = connID
	}
}

func (p *passSet) get(host string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.hosts[host]
	return id, ok
}
