package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// conn is one client connection on the main path (path.go), from its
// arrival to its published record: the one state every step reads and
// writes. The path's goroutine writes the record. The few facts that
// arise on other goroutines (an HTTP/2 stream's error, the User-Agent of
// a request, a dial the pool made for a request) are kept under mu, and
// finish writes them.
type conn struct {
	s      *Server
	rec    *inspect.ConnRecord
	err    error // why the connection ended, when no leg says: the record's error
	start  time.Time
	client *countingConn  // the client connection
	in     io.Reader      // what the hello is read from: what the source already read, then client
	dst    netip.AddrPort // the original destination (transparent); invalid when the source named a target

	// peek, route and decide
	replay   []byte // bytes read from the client before TLS: its hello and whatever followed it, until handed on
	replayed int    // their count
	notTLS   error  // the client spoke first, and not TLS: it is relayed untouched
	hello    inspect.ClientHello
	helloAt  time.Time // when the hello had arrived
	routeErr error     // nowhere to send it
	opened   bool      // its open event was published

	silence time.Duration // a client that sends nothing this long is relayed untouched (HandleConn's sources)

	// upstream: what is offered on the client's behalf, to which origin,
	// and the leg that reaches it.
	offer      upstreamOffer
	pre        *predial
	origin     string // upstream.Key of the origin, once dialled
	certOrigin string // the same without the identity: who asks for certificates
	ident      *identity
	counted    bool // counted open in learned.openOrigin, to be closed once
	up         upstreamLeg
	mirror     answer // what the client leg mirrors

	// client leg
	clientLeg *inspect.ClientLeg
	facts     verdictFacts
	issue     *ticketIssue // the ticket tlsresume issued the client, once it did
	clientKey string       // ticketKey, once made

	mu        sync.Mutex
	streamErr [2]string // the first error after the handshakes: [client side, origin side]
	userAgent string    // the first request's
	extra     int       // further upstream connections HTTP needed
	requests  []inspect.Request
	requested int  // requests relayed, those past inspect.MaxRequests too
	sealed    bool // finish took the requests: later answers are not noted
}

// Sides of a relayed connection, for streamError.
const (
	sideClient = iota
	sideOrigin
)

// streamError notes the first error that broke one side of the relay after
// its handshake; io.EOF, timeouts and closes tlsresume made are not errors.
func (c *conn) streamError(side int, err error) {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	c.mu.Lock()
	if c.streamErr[side] == "" {
		c.streamErr[side] = err.Error()
	}
	c.mu.Unlock()
}

// noteRequest notes a request relayed to the origin: the first one's
// User-Agent says which program this is, and the first
// inspect.MaxRequests are kept for the record. It returns the request's
// place there, or -1 (then nothing is kept, nor allocated).
func (c *conn) noteRequest(req *http.Request) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ua := req.Header.Get("User-Agent"); c.userAgent == "" && ua != "" {
		c.userAgent = ua
		if c.issue != nil {
			c.issue.noteProgram(inspect.ProgramName(ua))
		}
	}
	c.requested++
	if len(c.requests) >= inspect.MaxRequests || c.sealed {
		return -1
	}
	if c.requests == nil {
		c.requests = make([]inspect.Request, 0, 4)
	}
	c.requests = append(c.requests, inspect.Request{Method: inspect.Cut(req.Method, inspect.MaxNameLen),
		Authority: inspect.Cut(req.Host, inspect.MaxNameLen), Path: inspect.Cut(req.URL.Path, inspect.MaxNameLen)})
	return len(c.requests) - 1
}

// noteAnswer notes the origin's answer to request i (noteRequest): its
// status and the time to its headers.
func (c *conn) noteAnswer(i, status int, d time.Duration) {
	if i < 0 {
		return
	}
	c.mu.Lock()
	if !c.sealed {
		c.requests[i].Status, c.requests[i].MS = status, ms(d)
	}
	c.mu.Unlock()
}

// noteBody notes the length of request i's response body.
func (c *conn) noteBody(i int, n int64) {
	if i < 0 {
		return
	}
	c.mu.Lock()
	if !c.sealed {
		c.requests[i].Bytes = n
	}
	c.mu.Unlock()
}

// noteExtraHandshake counts an upstream connection HTTP needed beyond the
// first.
func (c *conn) noteExtraHandshake() {
	c.mu.Lock()
	c.extra++
	c.mu.Unlock()
}

// newConn starts the record of a connection that just arrived.
func (s *Server) newConn(a arrival) *conn {
	c := &conn{s: s, start: s.cfg.Now(), client: &countingConn{Conn: a.conn}, dst: a.dst, err: a.err, silence: a.silence}
	c.in = c.client.Conn
	if len(a.read) > 0 {
		c.in = &replayConn{Conn: c.client.Conn, pending: a.read}
	}
	target := a.target
	if a.dst.IsValid() {
		target = a.dst.String()
	}
	c.rec = &inspect.ConnRecord{
		ID:     s.ids.next(),
		Target: target,
		Record: inspect.Record{V: inspect.SchemaVersion, Time: c.start, Source: a.source, Transport: inspect.TransportNameTCP,
			ClientAddr: a.conn.RemoteAddr().String(), ServerAddr: target, Device: a.device, DNSName: a.dnsName},
	}
	if a.err == nil {
		// A device's TCP connection may be an app's fallback from QUIC that
		// --quic block dropped.
		c.rec.AfterQUIC = s.fallbacks.follow(a.device, a.dst, c.rec.ID, c.start)
	}
	return c
}

// dialAddr is where the upstream leg connects: the original destination in
// transparent mode, else the target host:port.
func (c *conn) dialAddr() string {
	if c.dst.IsValid() {
		return c.dst.String()
	}
	return c.rec.Target
}

// serverName is the name the client asked for: its SNI, else the name its
// WireGuard device looked up for the destination (dns_name), else the
// target host. The upstream handshake verifies the origin for it.
func (c *conn) serverName() string {
	if c.rec.SNI != "" {
		return c.rec.SNI
	}
	if c.rec.DNSName != "" {
		return c.rec.DNSName
	}
	host, _, _ := net.SplitHostPort(c.rec.Target)
	return host
}

// nameKey names an origin by name and port, whatever address it resolved
// to: two addresses of one name are one name (upstream_new_address).
func (c *conn) nameKey() string {
	_, port, _ := net.SplitHostPort(c.dialAddr())
	return net.JoinHostPort(c.serverName(), port)
}

// setOrigin names the origin by the address the upstream connection
// reached, as the upstream cache does (upstream.Key).
func (c *conn) setOrigin(remote string) {
	c.origin = upstream.Key(c.rec.SNI, remote, c.ident.key())
	c.certOrigin = upstream.Key(c.rec.SNI, remote, "")
}

// ticketKey names a client on a device and the host it talks to, as far
// as is known when tlsresume issues it a ticket: the client's IP, its TLS
// stack (JA4 less the parts a resuming hello changes), the SNI and the
// target. The program (the User-Agent's product) is known only once the
// first request was read, after the ticket: ticketBefore compares it then.
// Apple's TLS session cache lives in each process (seed 001), so two apps
// with one TLS stack on one phone are two clients.
func (c *conn) ticketKey() string {
	if c.clientKey != "" {
		return c.clientKey
	}
	host, _, _ := net.SplitHostPort(c.rec.ClientAddr)
	ja4 := ""
	if c.rec.ClientHello != nil {
		ja4 = inspect.JA4Program(c.rec.ClientHello.JA4)
	}
	c.clientKey = host + "|" + ja4 + "|" + c.serverName() + "|" + c.rec.Target
	return c.clientKey
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

// open publishes the connection's open event, once: a snapshot of the
// record as it stands (the client's offer, no legs yet).
func (c *conn) open() {
	if c.opened {
		return
	}
	c.opened = true
	snap := *c.rec
	c.s.events.publish(inspect.EventOpen, snap.Capped())
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
		if len(r.pending) == 0 {
			r.pending = nil // let the peeked hello's buffer go
		}
		return n, nil
	}
	return r.Conn.Read(b)
}

// CloseWrite half-closes the connection when it can.
func (r *replayConn) CloseWrite() error { return closeWrite(r.Conn) }
