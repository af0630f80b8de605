package wireguard

import (
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCPConn is a device's TCP connection as Config.HandleTCP receives it (as
// a net.Conn): RemoteAddr is the device's tunnel address, LocalAddr the
// original destination.
type TCPConn struct {
	*gonet.TCPConn
	ep        tcpip.Endpoint
	closeOnce sync.Once
	closeErr  error
}

// Close closes the connection with a FIN. It may be called more than once.
func (c *TCPConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.TCPConn.Close() })
	return c.closeErr
}

// Abort closes the connection with a reset (RST) instead of a FIN, as a
// kernel does for SO_LINGER 0: for a destination that cannot be reached,
// so that the device sees a refusal rather than an empty answer.
func (c *TCPConn) Abort() error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	return c.Close()
}

// forwardTCP is the netstack's TCP forwarder: it runs on a goroutine of
// its own for each SYN from a device (at most MaxTCPHandshakes at once).
// The handshake is answered only once the connection can be handed over:
// the device is known, AcceptTCP agrees, and a slot under MaxTCPConns is
// free; else the SYN is answered with a reset.
func (s *Server) forwardTCP(r *tcp.ForwarderRequest) {
	if !s.enter() {
		r.Complete(true)
		return
	}
	defer s.handlers.Done()
	id := r.ID()
	// The netstack's view: Remote is the device, Local the destination.
	src, dst := addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)
	d, ok := s.deviceAt(src.Addr())
	if !ok {
		// WireGuard only lets a device's own addresses in; this would be
		// a device removed a moment ago.
		r.Complete(true)
		return
	}
	log := s.log.With().Str("device", d.name).Str("client_addr", src.String()).Str("dst", dst.String()).Logger()
	if !s.admitTCP(src, dst, d) {
		r.Complete(true)
		log.Debug().Msg("tcp refused")
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		<-s.tcpSlots
		r.Complete(true)
		log.Debug().Str("error", err.String()).Msg("tcp handshake failed")
		return
	}
	r.Complete(false)
	conn := &TCPConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}
	d.tcpConns.Add(1)
	d.activeTCP.Add(1)
	// The handler gets a goroutine of its own: this one's stack has grown
	// to 16 KiB in the netstack's handshake, and a held connection would
	// keep it (BenchmarkHeldConn: 16.4 KiB of stack per connection, 8.2
	// on a fresh goroutine as over loopback).
	s.handlers.Add(1)
	go s.serveTCP(conn, dst, d)
}

// admitTCP reports whether a connection may be handed over, taking a slot
// under MaxTCPConns if so.
func (s *Server) admitTCP(src, dst netip.AddrPort, d *devState) bool {
	if s.cfg.HandleTCP == nil || (s.cfg.AcceptTCP != nil && !s.cfg.AcceptTCP(src, dst, d.name)) {
		d.refusedTCP.Add(1)
		return false
	}
	select {
	case s.tcpSlots <- struct{}{}:
		return true
	default:
		d.refusedTCP.Add(1)
		s.log.Warn().Str("device", d.name).Int("max_tcp_conns", s.cfg.MaxTCPConns).Msg("tcp refused: too many connections")
		return false
	}
}

// serveTCP runs HandleTCP and then releases what forwardTCP took.
func (s *Server) serveTCP(conn *TCPConn, dst netip.AddrPort, d *devState) {
	defer s.handlers.Done()
	defer func() { <-s.tcpSlots }()
	defer d.activeTCP.Add(-1)
	defer conn.Close()
	s.cfg.HandleTCP(conn, dst, d.name)
}

var _ net.Conn = (*TCPConn)(nil)
