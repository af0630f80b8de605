package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// Arrival is a client connection from a source the proxy does not listen
// for itself: tlsresume's WireGuard server hands over each TCP connection
// a device makes (package wgsource). See HandleConn.
type Arrival struct {
	// Conn is the client connection; its RemoteAddr is the client's
	// address. HandleConn closes it. A refused connection is reset rather
	// than closed when Conn can: it has an Abort method (a reset, as
	// wireguard.TCPConn has), or it is a *net.TCPConn.
	Conn net.Conn
	// Dst is where the client was going. The upstream leg dials it, on any
	// port; the hello's SNI (else DNSName) names the host, as for a
	// transparent connection. Required: without it the connection is
	// refused.
	Dst netip.AddrPort
	// Source is the record's source, e.g. inspect.SourceWireGuard.
	Source inspect.Source
	// Device names the device the connection came from: the record's
	// device. Default: none.
	Device string
	// DNSName is the name the client last looked up whose answer held
	// Dst's address: the record's dns_name, and the host's name when the
	// hello has no SNI. Default: none.
	DNSName string
	// Refuse, when set, refuses the connection before a byte is read from
	// it: its record says this error, and the client gets a reset. For a
	// destination the source must not let its client reach. Default: nil.
	Refuse error
	// ClientSilence, when set, relays the connection untouched (recorded
	// as not TLS) once its client has sent nothing for this long: the
	// origin may be one that speaks first (SMTP, IMAP, FTP), and would
	// otherwise wait with its client for the peek timeout (10s) and be
	// cut off. Default 0: the hello is awaited for the peek timeout.
	ClientSilence time.Duration
}

// HandleConn runs a connection from a source the proxy does not listen
// for itself through the main path, as it runs a transparent one, and
// returns once the connection's record is published. The gate admits it
// (--max-conns counts it; --allow does not apply, for the source has
// authenticated its client: a WireGuard device by its key), Shutdown waits
// for it, and the idle timeout applies. A destination that is one of
// tlsresume's own listeners is refused. Once Shutdown has begun, or at
// --max-conns with every slot held by a connection that sent its hello, the
// connection is reset without a record (the gate counts the second).
func (s *Server) HandleConn(a Arrival) {
	s.startRotation()
	if a.Refuse == nil {
		a.Refuse = s.refuseArrival(a.Dst)
	}
	conn := a.Conn
	if a.Refuse != nil {
		conn = resetOnClose{conn}
	}
	g := s.gate
	sl := g.admit(conn)
	if sl == nil {
		g.atCap.Add(1)
		g.say(turnedAtCap, conn.RemoteAddr().String(), "refuse connection: --max-conns reached, every slot held by a client that sent its hello or request")
		resetOnClose{a.Conn}.Close()
		return
	}
	sc := g.hold(conn, sl)
	if !s.track(sc) { // Shutdown has begun
		g.mu.Lock()
		g.releaseLocked(sl)
		g.mu.Unlock()
		resetOnClose{a.Conn}.Close()
		return
	}
	s.serve(arrival{conn: sc, dst: a.Dst, source: a.Source, device: a.Device, dnsName: a.DNSName, err: a.Refuse, silence: a.ClientSilence})
}

// awaitClient waits up to c.silence for the client's first byte, which it
// keeps for the hello's reading. silent says the client sent nothing in
// that time (c.notTLS then says so); err, that it closed or failed first.
func (c *conn) awaitClient(raw net.Conn) (silent bool, err error) {
	raw.SetReadDeadline(c.s.cfg.Now().Add(c.silence))
	b := make([]byte, 1)
	n, err := raw.Read(b)
	raw.SetReadDeadline(time.Time{})
	switch {
	case n == 1:
		c.in = &replayConn{Conn: raw, pending: b}
		return false, nil
	case isTimeout(err) && !wasEvicted(raw): // gVisor's netstack times out with an error of its own, not os.ErrDeadlineExceeded
		establish(raw) // a server that speaks first is as busy as one that listens
		c.notTLS = fmt.Errorf("the client sent nothing for %v: relayed untouched, in case the server speaks first (SMTP, IMAP, FTP)", c.silence)
		return true, nil
	case wasEvicted(raw):
		return false, errEvicted
	}
	return false, fmt.Errorf("reading the ClientHello: %w", err)
}

// refuseArrival says why a connection to dst must be refused, or nil.
func (s *Server) refuseArrival(dst netip.AddrPort) error {
	switch {
	case !dst.IsValid():
		return errors.New("refused: the source named no destination")
	case s.isSelf(dst):
		return fmt.Errorf("refused: %s is tlsresume itself (one of its listeners)", dst)
	}
	return nil
}

// IsSelf reports whether dst reaches one of tlsresume's own listeners: the
// Server's, and Config.SelfAddrs (a listener on 0.0.0.0 or :: by every
// local address). A source that relays what the proxy does not (a
// WireGuard device's UDP) refuses these, as the proxy does.
func (s *Server) IsSelf(dst netip.AddrPort) bool { return s.isSelf(dst) }

// resetOnClose closes its connection with a reset (RST), so that a client
// refused after its handshake sees a refusal, not an empty answer.
type resetOnClose struct{ net.Conn }

func (r resetOnClose) Close() error {
	switch c := r.Conn.(type) {
	case interface{ Abort() error }:
		return c.Abort()
	case *net.TCPConn:
		c.SetLinger(0) // close(2) then sends RST (socket(7), SO_LINGER)
	}
	return r.Conn.Close()
}

// CloseWrite closes, with a reset: nothing is half-closed on a refusal.
func (r resetOnClose) CloseWrite() error { return r.Close() }
