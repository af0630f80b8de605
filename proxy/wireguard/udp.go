package wireguard

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// ErrIdle is returned by UDPFlow.Read once the flow has carried nothing
// either way for Config.UDPIdleTimeout.
var ErrIdle = errors.New("wireguard: udp flow idle")

// UDPFlow is one UDP flow from a device: the datagrams one device address
// and port sends to one destination address and port, and the answers
// sent back as if from that destination. It is a connected net.Conn whose
// LocalAddr is Dst and RemoteAddr Src; each Read returns one datagram.
type UDPFlow struct {
	// Src is the device's tunnel address and port.
	Src netip.AddrPort
	// Dst is the destination the device sent to: a DNS query to the
	// server's address has ServerAddrs' address and port 53; QUIC has
	// port 443.
	Dst netip.AddrPort
	// Device is the device's name.
	Device string

	conn      *gonet.UDPConn
	idle      time.Duration
	last      atomic.Int64 // unix nanoseconds of the last datagram either way
	timer     *time.Timer
	idled     atomic.Bool
	closeOnce sync.Once
	onClose   func()
}

var _ net.Conn = (*UDPFlow)(nil)

func newUDPFlow(c *gonet.UDPConn, src, dst netip.AddrPort, device string, idle time.Duration, onClose func()) *UDPFlow {
	f := &UDPFlow{Src: src, Dst: dst, Device: device, conn: c, idle: idle, onClose: onClose}
	f.touch()
	f.timer = time.AfterFunc(idle, f.checkIdle)
	return f
}

func (f *UDPFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// checkIdle closes the flow if it has been idle for the timeout, else
// looks again when it would be.
func (f *UDPFlow) checkIdle() {
	since := time.Since(time.Unix(0, f.last.Load()))
	if since < f.idle {
		f.timer.Reset(f.idle - since)
		return
	}
	f.idled.Store(true)
	f.Close()
}

// Read reads the next datagram the device sent to Dst. A buffer smaller
// than the datagram gets its start; the rest is lost, as on a UDP socket.
func (f *UDPFlow) Read(b []byte) (int, error) {
	n, err := f.conn.Read(b)
	if err != nil {
		if f.idled.Load() {
			return 0, ErrIdle
		}
		return 0, err
	}
	f.touch()
	return n, nil
}

// Write sends b to the device as one datagram from Dst.
func (f *UDPFlow) Write(b []byte) (int, error) {
	n, err := f.conn.Write(b)
	if err == nil {
		f.touch()
	}
	return n, err
}

// Close ends the flow: a later datagram from the device starts a new one.
// It may be called more than once.
func (f *UDPFlow) Close() error {
	var err error
	f.closeOnce.Do(func() {
		f.timer.Stop()
		err = f.conn.Close()
		f.onClose()
	})
	return err
}

func (f *UDPFlow) LocalAddr() net.Addr                { return net.UDPAddrFromAddrPort(f.Dst) }
func (f *UDPFlow) RemoteAddr() net.Addr               { return net.UDPAddrFromAddrPort(f.Src) }
func (f *UDPFlow) SetDeadline(t time.Time) error      { return f.conn.SetDeadline(t) }
func (f *UDPFlow) SetReadDeadline(t time.Time) error  { return f.conn.SetReadDeadline(t) }
func (f *UDPFlow) SetWriteDeadline(t time.Time) error { return f.conn.SetWriteDeadline(t) }

// forwardUDP is the netstack's UDP forwarder, called in the packet's path
// for a datagram that belongs to no open flow: it opens a flow (at most
// MaxUDPFlows at once) and hands it to HandleUDP on a goroutine of its own.
// A datagram that cannot start a flow is dropped without an answer.
func (s *Server) forwardUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	src, dst := addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)
	d, ok := s.deviceAt(src.Addr())
	if !ok || s.cfg.HandleUDP == nil {
		return
	}
	select {
	case s.udpSlots <- struct{}{}:
	default:
		d.droppedUDPFlow.Add(1)
		s.log.Debug().Str("device", d.name).Str("client_addr", src.String()).Str("dst", dst.String()).Int("max_udp_flows", s.cfg.MaxUDPFlows).Msg("udp flow dropped: too many flows")
		return
	}
	if !s.enter() {
		<-s.udpSlots
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		<-s.udpSlots
		s.handlers.Done()
		s.log.Debug().Str("device", d.name).Str("dst", dst.String()).Str("error", err.String()).Msg("udp flow failed")
		return
	}
	var f *UDPFlow
	f = newUDPFlow(gonet.NewUDPConn(&wq, ep), src, dst, d.name, s.cfg.UDPIdleTimeout, func() {
		s.mu.Lock()
		delete(s.flows, f)
		s.mu.Unlock()
		<-s.udpSlots
		d.activeUDP.Add(-1)
	})
	s.mu.Lock()
	s.flows[f] = struct{}{}
	s.mu.Unlock()
	d.udpFlows.Add(1)
	d.activeUDP.Add(1)
	go func() {
		defer s.handlers.Done()
		defer f.Close()
		s.cfg.HandleUDP(f)
	}()
}
