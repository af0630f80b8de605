package wireguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/proxy/wireguard/nettun"
	"golang.zx2c4.com/wireguard/device"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Server is a WireGuard server in user space. Create it with New, run it
// with Start, stop it with Close.
type Server struct {
	cfg Config
	log zerolog.Logger

	tcpSlots chan struct{} // a slot per connection handed to HandleTCP
	udpSlots chan struct{} // a slot per UDP flow

	mu       sync.Mutex
	started  bool
	closed   bool
	byAddr   map[netip.Addr]*devState // by tunnel address, IPv4 and IPv6
	byKey    map[Key]*devState        // by public key
	devices  []Device                 // every device, in the order added
	flows    map[*UDPFlow]struct{}    // open flows, closed by Close
	handlers sync.WaitGroup           // forwarder goroutines, entered under mu while !closed

	bind  *udpBind
	link  *nettun.Link
	stack *stack.Stack
	dev   *device.Device

	closeOnce sync.Once
	done      chan struct{} // closed when Close begins
}

// devState is what the server keeps per device.
type devState struct {
	name           string
	tcpConns       atomic.Int64 // connections handed to HandleTCP, ever
	udpFlows       atomic.Int64 // flows handed to HandleUDP, ever
	activeTCP      atomic.Int64
	activeUDP      atomic.Int64
	refusedTCP     atomic.Int64 // resets: AcceptTCP said no, or the limits
	droppedUDPFlow atomic.Int64 // flows not started for the limit
}

// New checks cfg and applies its defaults. It does not listen: see Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Log,
		tcpSlots: make(chan struct{}, cfg.MaxTCPConns),
		udpSlots: make(chan struct{}, cfg.MaxUDPFlows),
		byAddr:   map[netip.Addr]*devState{},
		byKey:    map[Key]*devState{},
		flows:    map[*UDPFlow]struct{}{},
		bind:     &udpBind{addr: cfg.ListenAddr, bound: cfg.Conn},
		done:     make(chan struct{}),
	}
	for _, d := range cfg.Devices {
		if err := s.checkNewLocked(d); err != nil {
			return nil, err
		}
		s.addLocked(d)
	}
	return s, nil
}

// Start listens on Config.ListenAddr and serves until Close is called or
// ctx is done. It returns once WireGuard is listening.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return errors.New("wireguard: server already started")
	}
	s.started = true
	tun := nettun.New(s.cfg.MTU, dropEcho)
	s.link = tun.Link()
	st, err := newStack(s.link)
	if err != nil {
		return err
	}
	s.stack = st
	tcpFwd := tcp.NewForwarder(st, 0, s.cfg.MaxTCPHandshakes, s.forwardTCP)
	st.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(st, s.forwardUDP)
	st.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)

	s.dev = device.NewDevice(tun, s.bind, wgLogger(s.log))
	if err := s.dev.IpcSet(serverUAPI(s.cfg.ServerKey, s.devices)); err != nil {
		s.teardown()
		return fmt.Errorf("wireguard: configuring the device: %w", err)
	}
	if err := s.dev.Up(); err != nil {
		s.teardown()
		return fmt.Errorf("wireguard: listening on %s: %w", s.cfg.ListenAddr, err)
	}
	s.log.Info().Str("addr", s.addrLocked().String()).Int("devices", len(s.devices)).Msg("wireguard listening")
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return nil
}

// Addr returns the UDP address WireGuard listens on, with the port chosen
// for port 0; nil before Start and after Close.
func (s *Server) Addr() *net.UDPAddr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrLocked()
}

func (s *Server) addrLocked() *net.UDPAddr {
	if a, ok := s.bind.localAddr().(*net.UDPAddr); ok {
		return a
	}
	return nil
}

// AddDevice lets one more device connect, e.g. one that `tlsresume
// wireguard config` created while the server runs.
func (s *Server) AddDevice(d Device) error {
	if err := checkDevice(d); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if err := s.checkNewLocked(d); err != nil {
		return err
	}
	if s.dev != nil {
		if err := s.dev.IpcSet(peerUAPI(d)); err != nil {
			return fmt.Errorf("wireguard: adding device %q: %w", d.Name, err)
		}
	}
	s.addLocked(d)
	return nil
}

// checkNewLocked refuses a device whose name, address or key another
// device has.
func (s *Server) checkNewLocked(d Device) error {
	for _, other := range s.devices {
		if other.Name == d.Name {
			return fmt.Errorf("wireguard: device %q is already known", d.Name)
		}
	}
	for _, a := range []netip.Addr{d.IPv4, d.IPv6} {
		if other, ok := s.byAddr[a]; ok {
			return fmt.Errorf("wireguard: device %q: address %s is device %q's", d.Name, a, other.name)
		}
	}
	if other, ok := s.byKey[d.PublicKey()]; ok {
		return fmt.Errorf("wireguard: device %q: its key is device %q's", d.Name, other.name)
	}
	return nil
}

func (s *Server) addLocked(d Device) {
	st := &devState{name: d.Name}
	s.byAddr[d.IPv4], s.byAddr[d.IPv6] = st, st
	s.byKey[d.PublicKey()] = st
	s.devices = append(s.devices, d)
}

// deviceAt returns the device whose tunnel address a is. WireGuard has
// already dropped any packet whose source is not its sender's.
func (s *Server) deviceAt(a netip.Addr) (*devState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.byAddr[a]
	return d, ok
}

// enter registers a forwarder goroutine, or returns false once Close has
// begun. A true return must be matched by s.handlers.Done().
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	return true
}

// Close stops the server: no new connection or flow is delivered,
// WireGuard stops, every connection and flow is reset or closed, and Close
// returns once every handler has returned.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		flows := make([]*UDPFlow, 0, len(s.flows))
		for f := range s.flows {
			flows = append(flows, f)
		}
		s.mu.Unlock()
		for _, f := range flows {
			f.Close()
		}
		s.teardown()
		s.handlers.Wait()
		if s.stack != nil {
			s.stack.Wait()
		}
	})
	return nil
}

// teardown stops WireGuard (which closes the tun device and the socket)
// and aborts every netstack endpoint, so handlers blocked reading return.
func (s *Server) teardown() {
	if s.dev != nil {
		s.dev.Close()
	}
	if s.stack != nil {
		s.stack.Close()
	}
	if s.link != nil {
		s.link.Close()
	}
	s.bind.closeUnused()
}

// addrPort converts a netstack address and port.
func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip.Unmap(), port)
}

// wgLogger routes WireGuard's own messages to the logger at debug level;
// its errors (a malformed packet, a failed handshake) are a device's
// business, not the console's.
func wgLogger(log zerolog.Logger) *device.Logger {
	return &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug().Str("stage", "wireguard").Msgf(format, args...) },
		Errorf:   func(format string, args ...any) { log.Debug().Str("stage", "wireguard").Msgf(format, args...) },
	}
}
