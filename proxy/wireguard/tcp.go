package wireguard

import (
	"net"
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
	if s.cfg.HandleTCP == nil || (s.cfg.AcceptTCP != nil && !s.cfg.AcceptTCP(src, dst, d.name)) {
		d.refusedTCP.Add(1)
		r.Complete(true)
		log.Debug().Msg("tcp refused")
		return
	}
	select {
	case s.tcpSlots <- struct{}{}:
	default:
		d.refusedTCP.Add(1)
		r.Complete(true)
		log.Warn().Int("max_tcp_conns", s.cfg.MaxTCPConns).Msg("tcp refused: too many connections")
		return
	}
	defer func() { <-s.tcpSlots }()
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		r.Complete(true)
		log.Debug().Str("error", err.String()).Msg("tcp handshake failed")
		return
	}
	r.Complete(false)
	conn := &TCPConn{TCPConn: gonet.NewTCPConn(&wq, ep), ep: ep}
	d.tcpConns.Add(1)
	d.activeTCP.Add(1)
	defer d.activeTCP.Add(-1)
	defer conn.Close()
	s.cfg.HandleTCP(conn, dst, d.name)
}

var _ net.Conn = (*TCPConn)(nil)
