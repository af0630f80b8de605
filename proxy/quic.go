package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// QUIC modes (Config.QUIC, --quic).
const (
	// QUICPass relays a QUIC flow's datagrams untouched both ways, so the
	// app behaves as it does directly, and records each QUIC connection
	// with the origin's answer read from its Initial packets: whether the
	// origin resumed the app's HTTP/3.
	QUICPass = "pass"
	// QUICBlock drops a QUIC flow's datagrams, without an answer, so the
	// app falls back to TCP, where tlsresume intercepts it; each blocked
	// QUIC connection is recorded, naming the TCP connection that
	// followed.
	QUICBlock = "block"
)

// QUICArrival is a UDP flow to port 443 (QUIC) from a source the proxy
// does not listen for itself: tlsresume's WireGuard server hands over each
// one a device starts (package wgsource). See HandleQUIC.
type QUICArrival struct {
	// Client is the client's side of the flow: each Read returns the next
	// datagram the client sent (an error once the flow ended), each Write
	// sends the client one, as from Dst. Its RemoteAddr is the client's
	// address. HandleQUIC closes it.
	Client net.Conn
	// Origin is a UDP socket connected to Dst, which the source lets the
	// client reach. HandleQUIC closes it; with QUICBlock nothing is sent
	// on it.
	Origin *net.UDPConn
	// Dst is where the client's datagrams were going.
	Dst netip.AddrPort
	// Source is the records' source, e.g. inspect.SourceWireGuard.
	Source inspect.Source
	// Device names the device the flow came from: the records' device.
	Device string
	// DNSName is the name the client last looked up whose answer held
	// Dst's address: the records' dns_name.
	DNSName string
}

// HandleQUIC relays a QUIC flow untouched, or blocks it, as Config.QUIC
// says, and reads its datagrams as they pass (inspect.QUICFlow): each QUIC
// connection on it gets a record with transport "quic", the client's hello,
// the origin's answer (pass), and a verdict like a connection passed
// through, or quic_blocked. Records are published as a TCP connection's
// are: an open event once the hello is read, the close event when the
// connection ended. A QUIC connection ends when another starts on the flow
// (a client may reuse its port) or when the flow does: nothing either way
// for Config.QUICIdleTimeout (pass) or inspect.QUICFallbackWindow (block,
// from the client), Shutdown's grace, or ctx done. HandleQUIC returns once
// the flow's records are published. A destination that is one of
// tlsresume's own listeners is refused: that (or a missing Origin to relay
// to) is the only error it returns. Datagrams that are not QUIC are
// relayed (or dropped) all the same, and make no record.
func (s *Server) HandleQUIC(ctx context.Context, a QUICArrival) error {
	defer a.Client.Close()
	if a.Origin != nil {
		defer a.Origin.Close()
	}
	if a.Origin == nil && s.cfg.QUIC != QUICBlock {
		return errors.New("proxy: HandleQUIC needs QUICArrival.Origin to relay")
	}
	if err := s.refuseArrival(a.Dst); err != nil {
		return err
	}
	if !s.track(a.Client) { // Shutdown has begun
		return nil
	}
	defer s.untrack(a.Client)
	f := s.newQUICFlow(a)
	stop := context.AfterFunc(ctx, func() { a.Client.Close() })
	defer stop()
	// A flow ends when reading its client side fails: it was idle, or
	// closed (ctx, Shutdown, the source). UDP has no other error to report.
	if f.blocking {
		f.block()
	} else {
		f.pass()
	}
	f.close()
	return nil
}

// maxDatagram is the largest datagram relayed: a UDP payload's limit.
const maxDatagram = 65535

// pass relays the flow's datagrams untouched both ways until the client's
// side ends. Each is read before it is sent on, so that the reader sees
// them in an order the peers could have sent them in: read after, the
// origin's ServerHello could be read before the client's Initial it
// answers (then lost: seen with Chromium through wireguard-go, the origin
// a namespace away), or the client's Handshake packet before that
// ServerHello (then recorded without it). Reading leaves a datagram's
// bytes as they were.
func (f *quicFlow) pass() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // origin → client, until Origin is closed
		defer wg.Done()
		buf := make([]byte, maxDatagram)
		for {
			n, err := f.a.Origin.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // an ICMP error reported on a connected socket: the client may send again
			}
			f.server(buf[:n])
			if _, err := f.a.Client.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.a.Client.Read(buf)
		if err != nil {
			break
		}
		f.client(buf[:n])
		f.a.Origin.Write(buf[:n]) // a refused datagram is as lost as one dropped on the way
	}
	f.a.Origin.Close()
	wg.Wait()
}

// block reads the client's datagrams and drops them, sending nothing
// anywhere (no ICMP either: the app's own timeout, not an error, makes it
// fall back), until it has sent nothing for inspect.QUICFallbackWindow.
func (f *quicFlow) block() {
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.a.Client.Read(buf)
		if err != nil {
			return
		}
		f.client(buf[:n])
	}
}

// idler closes a flow's client side once the flow carried nothing for
// its timeout, which ends the loop reading it.
type idler struct {
	timeout time.Duration
	last    atomic.Int64 // time.Now's UnixNano of the last datagram
	timer   *time.Timer
	conn    net.Conn
}

func startIdler(c net.Conn, timeout time.Duration) *idler {
	i := &idler{timeout: timeout, conn: c}
	i.touch()
	i.timer = time.AfterFunc(timeout, i.check)
	return i
}

func (i *idler) touch() { i.last.Store(time.Now().UnixNano()) }

func (i *idler) check() {
	if since := time.Since(time.Unix(0, i.last.Load())); since < i.timeout {
		i.timer.Reset(i.timeout - since)
		return
	}
	i.conn.Close()
}

func (i *idler) stop() { i.timer.Stop() }
