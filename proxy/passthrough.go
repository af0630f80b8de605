package proxy

import (
	"crypto/tls"
	"fmt"
	"net"
	"path"
	"slices"
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
	if why, ok := s.autoPass.get(c.passClient(), host); ok {
		return "--auto-passthrough: " + why
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
// AutoPass is one client that --auto-passthrough passes through for one
// host: a client program (address and TLS stack) that rejected tlsresume's
// certificate for it, and the evidence.
type AutoPass struct {
	Client string    `json:"client"` // the client's IP and JA4 program
	Host   string    `json:"host"`
	Reason string    `json:"reason"` // what triggered it, naming the connections
	Since  time.Time `json:"since"`
}

// passSet is --auto-passthrough's memory, per client program and host. An
// alert rejecting the certificate is evidence enough; a hang-up right after
// the certificate without an alert (how some apps pin, and also what an
// impatient client does) must happen twice.
type passSet struct {
	mu      sync.Mutex
	entries map[string]*passEntry // by client + host
}

type passEntry struct {
	AutoPass
	closes []string // connections that hung up at the certificate
	active bool
}

// reject notes a rejection of tlsresume's certificate by connID; it says
// whether that made the client passed through.
func (p *passSet) reject(client, host, connID, alert string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries == nil || len(p.entries) >= maxMemory {
		p.entries = map[string]*passEntry{}
	}
	key := client + "|" + host
	e := p.entries[key]
	if e == nil {
		e = &passEntry{AutoPass: AutoPass{Client: client, Host: host}}
		p.entries[key] = e
	}
	if e.active {
		return false
	}
	switch {
	case alert != "":
		e.Reason = fmt.Sprintf("this client rejected tlsresume's certificate for %s with alert %s (connection %s)", host, alert, connID)
	default:
		e.closes = append(e.closes, connID)
		if len(e.closes) < 2 {
			return false
		}
		e.Reason = fmt.Sprintf("this client hung up right after tlsresume's certificate for %s, twice (connections %s)", host, strings.Join(e.closes, ", "))
	}
	e.active, e.Since = true, now
	return true
}

// get returns why client is passed through for host, if it is.
func (p *passSet) get(client, host string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[client+"|"+host]
	if e == nil || !e.active {
		return "", false
	}
	return e.Reason, true
}

func (p *passSet) list() []AutoPass {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AutoPass
	for _, e := range p.entries {
		if e.active {
			out = append(out, e.AutoPass)
		}
	}
	slices.SortFunc(out, func(a, b AutoPass) int { return a.Since.Compare(b.Since) })
	return out
}

func (p *passSet) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.entries {
		if e.active {
			n++
		}
	}
	p.entries = nil
	return n
}

// AutoPassthroughs lists the clients --auto-passthrough passes through.
func (s *Server) AutoPassthroughs() []AutoPass { return s.autoPass.list() }

// ResetAutoPassthrough intercepts every client again; it returns how many
// were passed through.
func (s *Server) ResetAutoPassthrough() int {
	n := s.autoPass.reset()
	s.cfg.Log.Info().Int("cleared", n).Msg("--auto-passthrough: every client is intercepted again")
	return n
}

// passClient names a client program for --auto-passthrough: its IP and its
// TLS stack (JA4 less what a resuming hello changes). The User-Agent is not
// known before the handshake.
func (c *conn) passClient() string {
	host, _, _ := net.SplitHostPort(c.rec.ClientAddr)
	ja4 := ""
	if c.rec.ClientHello != nil {
		ja4 = inspect.JA4Program(c.rec.ClientHello.JA4)
	}
	return host + " " + ja4
}
