package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/web"
	"github.com/tlsresume/tlsresume/proxy/wgsource"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// wireguardFlags are `tlsresume proxy --wireguard` and its companions:
// bound in bind (conn), built in build (src), served in serve.
type wireguardFlags struct {
	listen, endpoint string
	local            bool
	quic             string // --quic: pass or block
	peers            peerList
	conn             *net.UDPConn     // the WireGuard socket, bound by bindAll
	selfAddr         []netip.AddrPort // its address, for proxy.Config.SelfAddrs
	src              *wgsource.Source // made by buildWireGuard, started by serve
	started          wgPanel          // the view's device page: src, once started
}

func (w *wireguardFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&w.listen, "wireguard", "", "also serve phones and tablets over WireGuard on UDP `address`: each installs `tlsresume wireguard config --qr` and sends all its traffic through tlsresume (no root, no proxy setting), e.g. --wireguard 0.0.0.0:51820")
	fs.StringVar(&w.endpoint, "wireguard-endpoint", "", "`HOST:PORT` devices reach --wireguard at, written in their configurations (default: the --wireguard address when it names one, else this laptop's LAN address), e.g. --wireguard-endpoint 192.168.1.20:51820")
	fs.Var(&w.peers, "peer", "WireGuard device `names`, repeatable or comma-separated, each created on first use with its keys in the CA directory (default phone), e.g. --peer phone,tablet")
	fs.StringVar(&w.quic, "quic", proxy.QUICPass, "what becomes of WireGuard devices' QUIC (UDP to port 443): `pass` relays it untouched and records whether the origin resumed each connection (HTTP/3 resumption as the app does it directly), block drops it so the app falls back to TCP, where tlsresume intercepts it, e.g. --quic block")
	fs.BoolVar(&w.local, "wireguard-local", false, "let WireGuard devices reach this machine's own addresses (loopback, link-local, its interfaces'); tlsresume's own listeners stay out of reach, e.g. --wireguard-local")
}

// check refuses WireGuard settings that cannot work, before anything is
// bound: the address must be ip:port (":51820" is every address), the
// endpoint HOST:PORT, and the companions need --wireguard.
func (w *wireguardFlags) check() error {
	if w.quic != proxy.QUICPass && w.quic != proxy.QUICBlock {
		return fmt.Errorf("--quic %q: want pass or block", w.quic)
	}
	if w.listen == "" {
		switch {
		case w.endpoint != "":
			return errors.New("--wireguard-endpoint needs --wireguard ADDRESS")
		case len(w.peers) > 0:
			return errors.New("--peer needs --wireguard ADDRESS")
		case w.local:
			return errors.New("--wireguard-local needs --wireguard ADDRESS")
		case w.quic == proxy.QUICBlock:
			return errors.New("--quic block needs --wireguard ADDRESS: only WireGuard devices' UDP reaches tlsresume")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(w.listen)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || perr != nil {
		return fmt.Errorf("--wireguard %q: want ip:port, e.g. 0.0.0.0:51820", w.listen)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil {
		return fmt.Errorf("--wireguard %q: want an IP address before the port, e.g. 0.0.0.0:51820", w.listen)
	}
	if w.endpoint != "" {
		if _, err := wireguard.ChooseEndpoint(w.endpoint, 0); err != nil {
			return fmt.Errorf("--wireguard-endpoint: %w", err)
		}
	}
	return nil
}

// bind binds the WireGuard socket (bindAll: before anything is created).
func (w *wireguardFlags) bind() (*net.UDPConn, error) {
	if w.listen == "" {
		return nil, nil
	}
	ua, err := net.ResolveUDPAddr("udp", w.listen)
	if err != nil {
		return nil, fmt.Errorf("--wireguard %s: %w", w.listen, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("--wireguard: %w", err)
	}
	w.conn = c
	w.selfAddr = []netip.AddrPort{c.LocalAddr().(*net.UDPAddr).AddrPort()}
	return c, nil
}

// buildWireGuard makes the WireGuard source on the bound socket: its keys
// and devices in the CA directory, created on first use. The tunnel's DNS
// forwards to --dns-upstream, or to the resolver --dns forwards to: never
// to tlsresume's own --dns.
func (p *proxyFlags) buildWireGuard(cfg *proxy.Config) error {
	w := &p.wg
	if w.conn == nil {
		return nil
	}
	dir, err := certs.Dir(p.caDir)
	if err != nil {
		return err
	}
	st, err := wireguard.OpenStore(dir)
	if err != nil {
		return err
	}
	upstream := p.dnsUpstream
	if p.dnsSrv != nil {
		upstream = p.dnsSrv.Upstream()
	}
	w.src, err = wgsource.New(wgsource.Config{
		Conn: w.conn, Store: st, Devices: w.peers, Endpoint: w.endpoint, Local: w.local,
		DNSUpstream: upstream, Log: cfg.Log,
	})
	if err != nil {
		return fmt.Errorf("--wireguard: %w", err)
	}
	if w.local {
		cfg.Log.Warn().Msg("--wireguard-local: WireGuard devices may reach this machine's own addresses and services (tlsresume's own listeners excepted)")
	}
	// The source gives each QUIC flow to the proxy (HandleQUIC), which
	// relays or blocks it as this says.
	cfg.QUIC = w.quic
	if w.quic == proxy.QUICBlock {
		cfg.Log.Info().Msg("--quic block: WireGuard devices' QUIC is dropped, so apps fall back to TCP, where tlsresume intercepts them; each blocked QUIC connection is recorded, naming the TCP connection that followed")
	}
	return nil
}

// startWireGuard serves the devices through srv and says, on the console,
// where the devices' configurations are: the endpoint chosen, each device,
// and the first device's QR code (not in --log-json's console).
func (p *proxyFlags) startWireGuard(ctx context.Context, srv *proxy.Server, log zerolog.Logger, stderr io.Writer) error {
	w := &p.wg
	if w.src == nil {
		return nil
	}
	if err := w.src.Start(ctx, srv); err != nil {
		return fmt.Errorf("--wireguard: %w", err)
	}
	w.started.src.Store(w.src)
	log.Info().Str("listen", w.src.Addr().String()).Str("mode", "wireguard").Str("dns_upstream", w.src.DNSUpstream()).Msg("listening")
	choice, err := w.src.Endpoint()
	if err != nil {
		log.Warn().Err(err).Msg("no endpoint for the WireGuard configurations: pass --wireguard-endpoint HOST:PORT")
		return nil
	}
	linef(stderr, "%s", choice.Describe())
	caDir := ""
	if p.caDir != "" {
		caDir = " --ca-dir " + p.caDir
	}
	for _, d := range w.src.Devices() {
		linef(stderr, "WireGuard device %s (%s, %s): its configuration: tlsresume wireguard config --peer %s --endpoint %s%s --qr", d.Name, d.IPv4, d.IPv6, d.Name, choice.Endpoint, caDir)
	}
	if p.jsonLog {
		return nil
	}
	first := w.src.Devices()[0].Name
	text, err := w.src.DeviceConfig(first)
	if err == nil {
		var qr string
		if qr, err = wireguard.QRTerminal(text, false); err == nil {
			fmt.Fprint(stderr, qr)
			linef(stderr, "Scan it with the WireGuard app on device %s (+, then \"Create from QR code\" on iOS, \"Scan from QR code\" on Android), and trust tlsresume's CA there (tlsresume ca show).", first)
		}
	}
	if err != nil {
		log.Warn().Err(err).Str("device", first).Msg("showing the WireGuard configuration")
	}
	return nil
}

// close stops serving the devices; their connections still open are
// reset.
func (w *wireguardFlags) close() {
	if w.src != nil {
		w.src.Close()
	}
}

// counts gives the live view's /metrics the devices' counters; nil
// without --wireguard.
func (w *wireguardFlags) counts() func() []web.DeviceCounts {
	if w.src == nil {
		return nil
	}
	return func() []web.DeviceCounts {
		st, err := w.src.Stats()
		if err != nil {
			return nil
		}
		out := make([]web.DeviceCounts, len(st))
		for i, d := range st {
			out[i] = deviceCounts(d)
		}
		return out
	}
}

// panel gives the live view its device page; nil without --wireguard.
func (w *wireguardFlags) panel() web.WireGuardPanel {
	if w.src == nil {
		return nil
	}
	return &w.started
}

// peerList is --peer: repeatable, each value a name or a comma-separated
// list (a YAML list arrives as one), every name checked.
type peerList []string

func (l *peerList) String() string { return strings.Join(*l, ",") }

func (l *peerList) Set(v string) error {
	for _, name := range splitList(v) {
		if err := wireguard.CheckName(name); err != nil {
			return err
		}
		*l = append(*l, name)
	}
	return nil
}
