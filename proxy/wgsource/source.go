package wgsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/dns"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// Config configures a Source. Store is required, and Conn or ListenAddr;
// each other field's zero value means its documented default, applied in
// New.
type Config struct {
	// Conn is the WireGuard UDP socket, bound by the caller before it
	// created anything (tlsresume proxy binds every socket first). Close
	// closes it.
	Conn *net.UDPConn
	// ListenAddr is where WireGuard listens when Conn is nil (tests), e.g.
	// "127.0.0.1:0".
	ListenAddr string
	// Store holds the server key and the devices' keys. Required.
	Store *wireguard.Store
	// Devices names the devices that may connect; each is created in Store
	// on first use, and keeps its keys and addresses across runs.
	// Default: wireguard.DefaultDevice ("phone").
	Devices []string
	// Endpoint is the HOST:PORT devices reach the server at, written in
	// their configurations (--wireguard-endpoint). Default: the listening
	// address when it names one, else this machine's LAN address
	// (wireguard.ChooseEndpoint) and the listening port.
	Endpoint string
	// Local lets devices reach this machine's own addresses: loopback,
	// link-local, its interfaces' (--wireguard-local). Default: refused.
	// tlsresume's own listeners are refused whatever it says.
	Local bool
	// DNSUpstream is the resolver, "ip:port", that queries to the
	// tunnel's DNS address are forwarded to. It must not be tlsresume's
	// own DNS server (--dns). Default: the first nameserver of
	// /etc/resolv.conf.
	DNSUpstream string
	// QUIC is given each UDP flow to port 443, for as long as it lasts.
	// Default: the proxy's HandleQUIC, which relays or blocks it as the
	// proxy's Config.QUIC says (--quic pass|block) and records each QUIC
	// connection on it. RelayFlow relays it untouched, with no record.
	QUIC FlowFunc
	// UDPIdleTimeout ends a UDP flow that carried nothing either way for
	// this long. Default 60s.
	UDPIdleTimeout time.Duration
	// Log is the logger. Default zerolog.Nop().
	Log zerolog.Logger
}

// Source is the WireGuard server as a source of the proxy. Create it with
// New, start it with Start, stop it with Close.
type Source struct {
	cfg      Config
	wg       *wireguard.Server
	resolver *dns.Server // the tunnel's DNS address: a forwarder
	choice   wireguard.EndpointChoice
	chosen   error // why no endpoint could be chosen, if none was
	proxy    atomic.Pointer[proxy.Server]

	mu      sync.RWMutex // guards devices and byName: AddDevice adds to them
	devices []wireguard.Device
	byName  map[string]*device

	ctx    context.Context // cancelled by Close: ends relayed flows
	cancel context.CancelFunc
}

// New loads (or creates) the devices, chooses the endpoint written in
// their configurations, and makes the WireGuard server and the tunnel's
// resolver. Nothing is served before Start.
func New(cfg Config) (*Source, error) {
	if cfg.Store == nil {
		return nil, errors.New("wgsource: Config.Store is required")
	}
	if len(cfg.Devices) == 0 {
		cfg.Devices = []string{wireguard.DefaultDevice}
	}
	if cfg.UDPIdleTimeout == 0 {
		cfg.UDPIdleTimeout = 60 * time.Second
	}
	s := &Source{cfg: cfg, byName: map[string]*device{}}
	if s.cfg.QUIC == nil {
		s.cfg.QUIC = s.proxyQUIC
	}
	for _, name := range cfg.Devices {
		if _, dup := s.byName[name]; dup {
			continue
		}
		d, created, err := cfg.Store.Device(name)
		if err != nil {
			return nil, err
		}
		if created {
			cfg.Log.Info().Str("device", name).Str("file", cfg.Store.DeviceFile(name)).Msg("created wireguard device")
		}
		s.devices = append(s.devices, d)
		s.byName[name] = &device{Device: d}
	}
	p4, p6 := wireguard.TunnelPrefixes()
	var err error
	// The tunnel answers tlsresume.proxy itself, with its own address, so a
	// phone gets the CA at http://tlsresume.proxy/ with the tunnel on
	// (handleTCP serves it).
	v4, v6 := wireguard.ServerAddrs()
	s.resolver, err = dns.NewForwarder(dns.Config{Upstream: cfg.DNSUpstream, Allow: []netip.Prefix{p4, p6}, Log: cfg.Log,
		Intercept: []string{proxy.MagicHost}, AnswerV4: v4, AnswerV6: v6})
	if err != nil {
		return nil, fmt.Errorf("wgsource: the tunnel's DNS: %w", err)
	}
	s.wg, err = wireguard.New(wireguard.Config{
		ListenAddr: cfg.ListenAddr, Conn: cfg.Conn, ServerKey: cfg.Store.ServerKey(), Devices: s.devices,
		HandleTCP: s.handleTCP, HandleUDP: s.handleUDP, UDPIdleTimeout: cfg.UDPIdleTimeout, Log: cfg.Log,
	})
	if err != nil {
		s.resolver.Close()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start serves the devices, handing their connections to p, until ctx is
// done or Close is called.
func (s *Source) Start(ctx context.Context, p *proxy.Server) error {
	if p == nil {
		return errors.New("wgsource: Start needs the proxy")
	}
	s.proxy.Store(p)
	if err := s.wg.Start(ctx); err != nil {
		return err
	}
	s.choice, s.chosen = s.chooseEndpoint()
	return nil
}

// Close stops the server (every connection and flow of a device is reset
// or closed) and returns once every handler has returned.
func (s *Source) Close() error {
	s.cancel()
	err := s.wg.Close()
	s.resolver.Close()
	return err
}

// Addr is the UDP address WireGuard listens on; nil before Start.
func (s *Source) Addr() *net.UDPAddr { return s.wg.Addr() }

// Endpoint is the HOST:PORT written in the devices' configurations and how
// it was chosen, or why none could be (then pass Config.Endpoint). Known
// once started.
func (s *Source) Endpoint() (wireguard.EndpointChoice, error) { return s.choice, s.chosen }

// Devices are the devices that may connect, in the order configured, then
// those added since.
func (s *Source) Devices() []wireguard.Device {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.devices)
}

// device returns the named device's counters; nil for a name the source
// does not serve.
func (s *Source) device(name string) *device {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[name]
}

// ErrDeviceServed is AddDevice's answer for a name already served.
var ErrDeviceServed = errors.New("wgsource: the device is already served")

// AddDevice lets the named device connect from now on, without a restart:
// its keys and tunnel addresses are created on first use of the name, as
// --peer does at start, or read when `tlsresume wireguard config` created
// them. created reports whether they are new.
func (s *Source) AddDevice(name string) (d wireguard.Device, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byName[name]; ok {
		return wireguard.Device{}, false, fmt.Errorf("%w: %q", ErrDeviceServed, name)
	}
	if d, created, err = s.cfg.Store.Device(name); err != nil {
		return wireguard.Device{}, false, err
	}
	if err := s.wg.AddDevice(d); err != nil {
		return wireguard.Device{}, false, err
	}
	s.devices = append(s.devices, d)
	s.byName[name] = &device{Device: d}
	s.cfg.Log.Info().Str("device", name).Bool("created", created).Str("file", s.cfg.Store.DeviceFile(name)).Msg("added wireguard device")
	return d, created, nil
}

// DNSUpstream is the resolver the tunnel's DNS address forwards to.
func (s *Source) DNSUpstream() string { return s.resolver.Upstream() }

// chooseEndpoint: Config.Endpoint, else the listening address when it
// names one, else the LAN address and the listening port.
func (s *Source) chooseEndpoint() (wireguard.EndpointChoice, error) {
	addr := s.wg.Addr()
	if s.cfg.Endpoint == "" && addr != nil && !addr.IP.IsUnspecified() {
		return wireguard.ChooseEndpoint(addr.String(), uint16(addr.Port))
	}
	port := uint16(wireguard.DefaultPort)
	if addr != nil {
		port = uint16(addr.Port)
	}
	return wireguard.ChooseEndpoint(s.cfg.Endpoint, port)
}

// DeviceConfig is the wg-quick text the named device installs (it holds
// the device's private key): for `tlsresume wireguard config` and the live
// view's device page, whose QR code is wireguard.QRPNG of it.
func (s *Source) DeviceConfig(name string) (string, error) {
	d := s.device(name)
	if d == nil {
		return "", fmt.Errorf("wgsource: no device %q (the proxy serves %d: see --peer)", name, len(s.Devices()))
	}
	if s.chosen != nil || s.choice.Endpoint == "" {
		return "", fmt.Errorf("wgsource: no endpoint for device %q's configuration (pass --wireguard-endpoint HOST:PORT): %v", name, s.chosen)
	}
	return wireguard.WGQuick(d.Device, s.cfg.Store.ServerKey(), s.choice.Endpoint)
}

// handleTCP is the WireGuard server's HandleTCP: DNS is answered here,
// everything else goes to the proxy.
func (s *Source) handleTCP(c net.Conn, dst netip.AddrPort, name string) {
	d := s.device(name)
	if isTunnelDNS(dst) {
		d.dnsQueries.Add(1)
		if err := s.resolver.ServeConn(c, "tcp"); err != nil {
			s.cfg.Log.Debug().Str("device", name).Err(err).Msg("dns over tcp through the tunnel")
		}
		return
	}
	if isTunnelServer(dst, 80) {
		// http://tlsresume.proxy/, which the tunnel's DNS points here: the
		// CA download page, for a phone that has no CA yet.
		s.proxy.Load().ServeMagic(c)
		return
	}
	a := proxy.Arrival{Conn: c, Dst: dst, Source: inspect.SourceWireGuard, Device: name, DNSName: s.nameOf(d, dst.Addr())}
	if dst.Port() != 443 && dst.Port() != 80 {
		a.ClientSilence = serverFirstWait
	}
	if a.Refuse = s.refusal(dst); a.Refuse != nil {
		d.refusedTCP.Add(1)
	}
	s.proxy.Load().HandleConn(a)
}

// serverFirstWait is how long a device's connection to a port other than
// 443 and 80 may stay silent before it is relayed untouched: a device sends
// every connection here, mail's SMTP, IMAP and POP3 among them, whose
// servers speak first. A TLS or HTTP client speaks at once; one slower than
// this is relayed untouched too, and still works.
const serverFirstWait = time.Second

// nameOf is the name the device looked up whose answer held addr, asked
// from either of its addresses: it may ask over IPv4 and connect over IPv6.
func (s *Source) nameOf(d *device, addr netip.Addr) string {
	for _, client := range []netip.Addr{d.IPv4, d.IPv6} {
		if name, ok := s.resolver.NameOf(client, addr); ok {
			return name
		}
	}
	return ""
}

// isTunnelDNS reports whether dst is the tunnel's DNS server: the
// server's own address, port 53.
func isTunnelDNS(dst netip.AddrPort) bool { return isTunnelServer(dst, 53) }

// isTunnelServer reports whether dst is the tunnel's own address (the
// server's side of the tunnel) on port.
func isTunnelServer(dst netip.AddrPort, port uint16) bool {
	v4, v6 := wireguard.ServerAddrs()
	a := dst.Addr().Unmap()
	return dst.Port() == port && (a == v4 || a == v6)
}
