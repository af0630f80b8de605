package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// conn is one intercepted client connection, from arrival to close. Its
// record is written by one goroutine at a time: the one that handles the
// connection, then the relay that finishes it.
type conn struct {
	s            *Server
	rec          *inspect.ConnRecord
	err          error // why the connection could not be intercepted, if it could not
	start        time.Time
	client       *countingConn  // the client connection
	replayed     int            // bytes read from the client before TLS (the peeked hello)
	origDst      netip.AddrPort // transparent mode: where the client was going
	offer        upstreamOffer  // what the upstream leg offered for this client
	pre          *predial       // the destination, dialled while the hello arrives
	origin       string         // upstream.Key of the origin, once dialled
	certOrigin   string         // the same without the identity: who asks for certificates
	ident        *identity      // the client identity presented upstream, if any
	originOpened bool           // counted in memory.openOrigin, to be closed once
	tunnelled    bool           // not TLS: relayed untouched
	up           *upstreamConn
	clientLeg    *inspect.ClientLeg
	facts        verdictFacts
	opened       sync.Once
	finished     sync.Once
	streamMu     sync.Mutex
	streamErr    [2]string // the first error after the handshakes: [client side, origin side]
	// --upstream-reuse pool: the origin in the pool; whether c.up was given
	// to it; the upstream handshake c made itself for a pooled request; and
	// which connection's upstream connection carried its first request.
	pooled     *pooledOrigin
	upPooled   bool
	poolDial   *inspect.UpstreamLeg
	carried    bool
	reusedConn string
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
	c.streamMu.Lock()
	if c.streamErr[side] == "" {
		c.streamErr[side] = err.Error()
	}
	c.streamMu.Unlock()
}

// newConn starts the record of a connection that just arrived.
func (s *Server) newConn(raw net.Conn, source inspect.Source, target string) *conn {
	c := &conn{s: s, start: s.cfg.Now(), client: &countingConn{Conn: raw}}
	c.rec = &inspect.ConnRecord{
		ID:     s.nextID(),
		Target: target,
		Record: inspect.Record{V: inspect.SchemaVersion, Time: c.start, Source: source, Transport: inspect.TransportNameTCP, ClientAddr: raw.RemoteAddr().String(), ServerAddr: target},
	}
	return c
}

func (s *Server) nextID() string { return s.ids.next() }

// dialAddr is where the upstream leg connects: the original destination in
// transparent mode, else the target host:port.
func (c *conn) dialAddr() string {
	if c.origDst.IsValid() {
		return c.origDst.String()
	}
	return c.rec.Target
}

// serverName is the name the client asked for: its SNI, else the target
// host.
func (c *conn) serverName() string {
	if c.rec.SNI != "" {
		return c.rec.SNI
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
func (c *conn) setOrigin(remote net.Addr) {
	c.origin = upstream.Key(c.rec.SNI, remote.String(), c.ident.key())
	c.certOrigin = upstream.Key(c.rec.SNI, remote.String(), "")
}

// clientKey names a client program on a device and the host it talks to:
// the client's IP, the program (User-Agent product, known once the first
// request was read, else empty) and its TLS stack (JA4 less the parts a
// resuming hello changes). Apple's TLS session cache lives in each process
// (seed 001), so two apps with one TLS stack on one phone are two clients.
func (c *conn) clientKey() string {
	host, _, _ := net.SplitHostPort(c.rec.ClientAddr)
	ja4 := ""
	if c.rec.ClientHello != nil {
		ja4 = inspect.JA4Program(c.rec.ClientHello.JA4)
	}
	return host + "|" + inspect.ProgramName(c.rec.UserAgent) + "|" + ja4 + "|" + c.serverName() + "|" + c.rec.Target
}

// open publishes the connection's open event, once: a snapshot of the
// record as it stands (the client's offer, no legs yet).
func (c *conn) open() {
	c.opened.Do(func() {
		snap := *c.rec
		c.s.stream.publish(inspect.EventOpen, &snap)
	})
}

// fail ends a connection that could not be intercepted, because of err
// (nil when the record already says why).
func (c *conn) fail(err error) {
	if err != nil && c.err == nil {
		c.err = err
	}
	c.finish()
}

// finish closes both sides, completes the record and publishes it, once.
func (c *conn) finish() {
	c.finished.Do(func() {
		s := c.s
		c.open()
		c.pre.discard()
		c.client.Close()
		if !c.upPooled {
			c.up.close()
		}
		r := c.rec
		if c.err != nil && r.Error == "" {
			r.Error = c.err.Error()
		}
		r.BytesUp = int64(c.replayed) + c.client.read.Load()
		r.BytesDown = c.client.written.Load()
		r.DurationMS = ms(s.cfg.Now().Sub(c.start))
		c.streamMu.Lock()
		if r.ClientLeg != nil {
			r.ClientLeg.StreamError = c.streamErr[sideClient]
		}
		if u := r.UpstreamLeg; u != nil {
			if d := c.poolDial; u.Pooled && d != nil && d.Error == "" {
				// It made an upstream handshake of its own after all: that
				// handshake is its leg.
				*u = *d
				u.Pooled = true
			}
			u.StreamError = c.streamErr[sideOrigin]
			u.ReusedConn = c.reusedConn
		}
		c.streamMu.Unlock()
		if c.up != nil && c.up.view != nil && r.UpstreamLeg != nil {
			r.UpstreamLeg.TicketsReceived = c.up.view.Stored()
		}
		if c.originOpened {
			if r.UpstreamLeg != nil && r.UpstreamLeg.Error == "" && c.up.ticketsKnown() {
				s.origins.closeOrigin(c.origin, c.nameKey(), r.UpstreamLeg.TicketsReceived)
			} else {
				s.origins.abandonOrigin(c.origin)
			}
		}
		if r.ClientHello != nil && r.Passthrough == "" && !c.tunnelled {
			gotTicket := r.ClientLeg != nil && r.ClientLeg.TicketsSent > 0
			c.facts.ticketBefore = s.origins.clientTicket(c.clientKey(), r.ID, c.start, gotTicket)
		}
		c.facts.tunnelled = c.tunnelled
		r.Verdict = decide(r, c.facts)
		s.logRecord(r)
		s.stream.publish(inspect.EventClose, r)
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
		if len(r.pending) == 0 {
			r.pending = nil // let the peeked hello's buffer go
		}
		return n, nil
	}
	return r.Conn.Read(b)
}

// CloseWrite half-closes the connection when it can.
func (r *replayConn) CloseWrite() error { return closeWrite(r.Conn) }
