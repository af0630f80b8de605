package wireguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server. Its zero value is not enough: ServerKey and
// at least one handler are needed. Defaults are applied in one place,
// withDefaults, and each is documented on its field.
type Config struct {
	// ListenAddr is the UDP address WireGuard listens on, e.g.
	// "0.0.0.0:51820"; port 0 picks a free port (see Server.Addr).
	// Default ":51820" (every address, IPv4 and IPv6).
	ListenAddr string
	// Conn is a UDP socket already bound, for a caller that binds every
	// socket before it creates anything (tlsresume proxy): Start serves
	// on it, and ListenAddr is then its address. Close closes it. Default:
	// none, Start listens on ListenAddr.
	Conn *net.UDPConn
	// ServerKey is the server's private key (Store.ServerKey).
	ServerKey Key
	// Devices are the devices that may connect; more can be added while
	// the server runs (Server.AddDevice). A packet from any other key gets
	// no answer at all.
	Devices []Device
	// MTU is the tunnel's inner MTU. Default 1420, WireGuard's: 1500 less
	// 80 bytes of IPv6, UDP and WireGuard headers.
	MTU int

	// HandleTCP is given every TCP connection a device makes, to any
	// address and port, once its handshake is complete: conn's RemoteAddr
	// is the device's tunnel address, its LocalAddr and dst the original
	// destination, device the device's name. It runs on its own goroutine
	// and owns conn; when it returns, conn is closed if it is still open.
	// conn also has CloseWrite and Abort (a reset, for a destination that
	// cannot be reached). Nil refuses every connection with a reset.
	//
	// Destinations include the server's own tunnel addresses (ServerAddrs,
	// the devices' DNS server) and anything else a device names, the
	// laptop's own addresses and loopback (127.0.0.1, ::1) among them: it
	// is for the handler to decide what each may reach.
	HandleTCP func(conn net.Conn, dst netip.AddrPort, device string)
	// AcceptTCP, if set, is asked before a TCP handshake is answered;
	// false sends a reset instead, and HandleTCP is not called. It must
	// not block: it runs before the SYN is answered.
	AcceptTCP func(src, dst netip.AddrPort, device string) bool
	// HandleUDP is given each new UDP flow, one per device address and
	// port and destination address and port, on its own goroutine. When it
	// returns the flow is closed. Nil drops every UDP datagram.
	HandleUDP func(flow *UDPFlow)

	// MaxTCPHandshakes bounds TCP handshakes in progress (SYNs answered
	// and waiting for the device's ACK, or waiting for AcceptTCP); further
	// SYNs are dropped and the device retries. Default 256.
	MaxTCPHandshakes int
	// MaxTCPConns bounds TCP connections handed to HandleTCP at once;
	// beyond it a new connection gets a reset. Default 4096; the proxy
	// applies its own --max-conns through AcceptTCP as well.
	MaxTCPConns int
	// MaxUDPFlows bounds UDP flows at once; a datagram that would start
	// another is dropped. Default 1024.
	MaxUDPFlows int
	// UDPIdleTimeout closes a UDP flow that has carried nothing either way
	// for this long. Default 60s.
	UDPIdleTimeout time.Duration

	// Log is the logger. Default: the zero Logger, which writes nothing
	// (as zerolog.Nop()).
	Log zerolog.Logger
}

// withDefaults returns c with every default applied.
func (c Config) withDefaults() Config {
	if c.Conn != nil {
		c.ListenAddr = c.Conn.LocalAddr().String()
	}
	if c.ListenAddr == "" {
		c.ListenAddr = fmt.Sprintf(":%d", DefaultPort)
	}
	if c.MTU == 0 {
		c.MTU = 1420
	}
	if c.MaxTCPHandshakes == 0 {
		c.MaxTCPHandshakes = 256
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = 4096
	}
	if c.MaxUDPFlows == 0 {
		c.MaxUDPFlows = 1024
	}
	if c.UDPIdleTimeout == 0 {
		c.UDPIdleTimeout = 60 * time.Second
	}
	return c
}

// validate checks a config that has its defaults.
func (c Config) validate() error {
	switch {
	case c.ServerKey.IsZero():
		return errors.New("wireguard: no server key (Store.ServerKey)")
	case c.HandleTCP == nil && c.HandleUDP == nil:
		return errors.New("wireguard: neither HandleTCP nor HandleUDP is set: the server would deliver nothing")
	case c.MTU < 1280 || c.MTU > 65535:
		// IPv6 needs 1280 (RFC 8200 §5).
		return fmt.Errorf("wireguard: MTU %d: want 1280 to 65535", c.MTU)
	case c.MaxTCPHandshakes < 0 || c.MaxTCPConns < 0 || c.MaxUDPFlows < 0 || c.UDPIdleTimeout < 0:
		return errors.New("wireguard: negative limit")
	}
	if _, err := net.ResolveUDPAddr("udp", c.ListenAddr); err != nil {
		return fmt.Errorf("wireguard: listen address %q: %w", c.ListenAddr, err)
	}
	for _, d := range c.Devices {
		if err := checkDevice(d); err != nil {
			return err
		}
	}
	return nil
}

// checkDevice checks what the server relies on in a device.
func checkDevice(d Device) error {
	if err := CheckName(d.Name); err != nil {
		return err
	}
	if d.PrivateKey.IsZero() {
		return fmt.Errorf("wireguard: device %q has no key", d.Name)
	}
	p4, p6 := TunnelPrefixes()
	if !p4.Contains(d.IPv4) || !p6.Contains(d.IPv6) {
		return fmt.Errorf("wireguard: device %q: addresses %s, %s are not in the tunnel prefixes %s, %s", d.Name, d.IPv4, d.IPv6, p4, p6)
	}
	return nil
}
