package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/dns"
	"github.com/tlsresume/tlsresume/proxy/upstream"
	"github.com/tlsresume/tlsresume/proxy/web"
)

// proxyGCPercent is the proxy's GOGC unless the environment sets one.
// Most of the proxy's heap lives long (the live view's history, held
// connections), so Go's default of 100, which lets the heap grow to twice
// what is live before collecting, doubles the footprint of data that is
// never garbage. At 50 it grows by half instead; the collector then runs
// twice as often: 3 % of a loadbench run's time instead of 1 %
// (GODEBUG=gctrace=1), for 15–18 % less resident memory (README, Speed).
const proxyGCPercent = 50

const proxyExamples = `  tlsresume                                   # = tlsresume proxy on 127.0.0.1:8080
  curl -x http://127.0.0.1:8080 --cacert "$(tlsresume ca path)/ca.pem" https://example.com https://example.com
  tlsresume proxy --listen 0.0.0.0:8080 --allow 192.168.1.0/24 --log conns.jsonl --keylog keys.log
  tlsresume proxy --client-max-tls 1.2 --client-tickets=false   # how does the app behave without resumption?
  tlsresume proxy --config configs/tlsresume.yaml            # the same keys as the flags; flags win
`

// runProxy is `tlsresume proxy`: parse the flags, then bind → build →
// serve. Every failure comes back as one error, printed once; its exit
// code is 2 for what the user asked (a flag, a file), 1 for what went
// wrong running it.
func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(proxyGCPercent)
	}
	p, code, ok := parseProxyFlags(args, stderr)
	if !ok {
		return code
	}
	if err := p.run(ctx, stdout, stderr); err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return exitCode(err)
	}
	return 0
}

// usageError is a failure of what the user asked for: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func badUsage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// parseProxyFlags reads the command line and the config file, and checks
// every value that can be checked before anything is opened.
func parseProxyFlags(args []string, stderr io.Writer) (*proxyFlags, int, bool) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	p := &proxyFlags{}
	p.register(fs)
	setUsage(fs, "tlsresume [proxy] [flags]", proxyExamples)
	pos, exit, ok := parseFlags(fs, args, stderr)
	if !ok {
		return nil, exit, false
	}
	err := error(nil)
	switch {
	case len(pos) > 0:
		err = fmt.Errorf("unexpected argument %q (run \"tlsresume proxy --help\")", pos[0])
	case p.config != "":
		err = applyConfigFile(fs, p.config)
	}
	if err == nil {
		err = p.web.validate()
	}
	if err == nil {
		err = p.checkNumbers()
	}
	if err == nil {
		_, err = p.checkAddrs()
	}
	if err == nil {
		err = p.checkModes()
	}
	if err == nil {
		err = p.wg.check()
	}
	if err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return nil, 2, false
	}
	return p, 0, true
}

// run binds every socket first, so a start that fails on a taken port
// creates and rewrites nothing (no CA, no ticket keys, no log file); then
// builds the proxy and what reads its records; then serves until ctx is
// done or a listener fails.
func (p *proxyFlags) run(ctx context.Context, stdout, stderr io.Writer) (err error) {
	log := newLogger(stderr, p.jsonLog, p.verbose)
	socks, err := p.bindAll(ctx, log)
	if err != nil {
		return err
	}
	defer socks.close()
	serveCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if p.dnsSrv != nil {
		if err := p.dnsSrv.Start(serveCtx); err != nil {
			return errors.New("--dns: " + err.Error())
		}
		defer p.dnsSrv.Close()
	}
	cfg, closers, err := p.build(stdout, stderr)
	defer runAll(closers)
	if err != nil {
		return badUsage(err)
	}
	cfg.SelfAddrs = append(selfAddrs(socks.web, p.dnsSrv), p.wg.selfAddr...)
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	if p.recordLog != nil {
		stop := p.followLog(srv, cfg.Log)
		defer func() {
			if lost := stop(); lost != nil && err == nil {
				err = lost // records were lost: the run did not do its job
			}
		}()
	}
	if socks.web != nil {
		stop, err := p.startView(serveCtx, srv, cfg, socks.web, stderr)
		if err != nil {
			return err
		}
		socks.web = nil // the view closes it
		defer func() { cancel(); stop() }()
	}
	return p.serve(ctx, serveCtx, srv, cfg.Log, socks, stderr)
}

// selfAddrs are this process's listeners that the proxy does not accept
// on itself, the live view and the DNS server: the proxy refuses to reach
// them, as it refuses to reach its own (no client rotates the ticket keys
// through the token-less loopback view by way of the proxy).
func selfAddrs(webLn net.Listener, dnsSrv *dns.Server) []netip.AddrPort {
	var addrs []string
	if webLn != nil {
		addrs = append(addrs, webLn.Addr().String())
	}
	if dnsSrv != nil {
		addrs = append(addrs, dnsSrv.Addr()) // its UDP and TCP port
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			out = append(out, ap)
		}
	}
	return out
}

// sockets are what bindAll bound; close closes what is not served yet.
type sockets struct {
	listeners []listener
	web       net.Listener
	wg        *net.UDPConn // --wireguard's; the WireGuard source closes it too
}

func (s *sockets) close() {
	for _, l := range s.listeners {
		l.ln.Close()
	}
	if s.web != nil {
		s.web.Close()
	}
	if s.wg != nil {
		s.wg.Close()
	}
}

// bindAll binds the proxy's listeners, the live view's and the DNS
// server's.
func (p *proxyFlags) bindAll(ctx context.Context, log zerolog.Logger) (*sockets, error) {
	ls, err := p.bind(ctx, log)
	if err != nil {
		return nil, err
	}
	s := &sockets{listeners: ls}
	if s.web, err = p.web.listen(log, true); err != nil {
		s.close()
		return nil, err
	}
	// The DNS server's sockets too (build then uses the server it made).
	if err := p.buildDNS(&proxy.Config{Log: log}); err != nil {
		s.close()
		return nil, badUsage(err)
	}
	if s.wg, err = p.wg.bind(); err != nil { // build then makes the source on it
		s.close()
		return nil, err
	}
	return s, nil
}

// followLog makes the record log one subscriber of the record stream, with
// room to fall far behind: Shutdown ends the stream after the last
// record. stop waits for the last record and says whether any was lost.
func (p *proxyFlags) followLog(srv *proxy.Server, log zerolog.Logger) (stop func() error) {
	rl := p.recordLog
	if rl.Repaired {
		log.Warn().Str("log", p.logFile).Msg("the record log ended in a partial line (an earlier run was cut short): added a newline before the new records")
	}
	events := srv.Subscribe(context.Background(), recordLogBuffer)
	written := make(chan struct{})
	go func() {
		defer close(written)
		rl.Follow(events, log)
	}()
	return func() error {
		srv.Shutdown(context.Background()) // ends the stream if nothing else did
		<-written
		if err := rl.Close(); err != nil {
			return errors.New("--log " + p.logFile + ": " + err.Error())
		}
		return nil
	}
}

// startView serves the live view on ln, fed by the record stream; stop
// waits for it to end once ctx is done.
func (p *proxyFlags) startView(ctx context.Context, srv *proxy.Server, cfg proxy.Config, ln net.Listener, stderr io.Writer) (stop func(), err error) {
	wcfg, err := p.web.config(ln)
	if err != nil {
		ln.Close()
		return nil, err
	}
	wcfg.CA, wcfg.Upstream, wcfg.Log = cfg.CA, cfg.Upstream, cfg.Log
	wcfg.Refused = func() map[string]uint64 {
		a := srv.Admission()
		m := map[string]uint64{"not_allowed": a.NotAllowed, "at_cap": a.AtCap, "evicted": a.Evicted}
		if p.dnsSrv != nil {
			// A DNS query or connection from outside --allow is one
			// more peer turned away for the same reason.
			r := p.dnsSrv.Refusals()
			m["not_allowed"] += r.NotAllowed
			m["dns_not_allowed"], m["dns_rate_limited"] = r.NotAllowed, r.RateLimited
		}
		return m
	}
	if rl := p.recordLog; rl != nil {
		wcfg.Unwritten = rl.Unwritten
	}
	wcfg.Devices, wcfg.WireGuard = p.wg.counts(), p.wg.panel()
	wcfg.Passthrough = &web.PassthroughControl{List: func() any { return srv.AutoPassthroughs() }, Reset: srv.ResetAutoPassthrough}
	wcfg.TicketKeys = &web.TicketKeyControl{List: func() any { return srv.TicketKeys() }, Rotate: srv.RotateTicketKeys}
	view := web.New(wcfg)
	// The view is a subscriber with room to fall behind by a burst; it
	// never slows the proxy (the stream drops for it, and it says so).
	go view.Feed(ctx, srv.Subscribe(ctx, 1<<16))
	done := serveView(ctx, view, ln, wcfg.Token, stderr, cfg.Log)
	return func() { <-done }, nil
}

// serve runs every listener until ctx is done (SIGINT, SIGTERM) or one
// fails, then lets open connections finish for --grace.
func (p *proxyFlags) serve(ctx, serveCtx context.Context, srv *proxy.Server, log zerolog.Logger, socks *sockets, stderr io.Writer) error {
	if p.dnsSrv != nil {
		log.Info().Str("listen", p.dnsSrv.Addr()).Str("mode", "dns").Str("upstream", p.dnsSrv.Upstream()).Msg("listening")
	}
	serveFn := map[string]func(context.Context, net.Listener) error{
		"connect": srv.Serve, "transparent": srv.ServeTransparent, "sni": srv.ServeSNI, "http": srv.ServeHostHTTP,
	}
	errc := make(chan error, len(socks.listeners))
	for _, l := range socks.listeners {
		log.Info().Str("listen", shownAddr(l.requested, l.ln)).Str("mode", l.mode).Msg("listening")
		serve := serveFn[l.mode]
		go func() { errc <- serve(serveCtx, l.ln) }()
	}
	for _, l := range socks.listeners {
		if l.mode == "connect" {
			host, _, _ := net.SplitHostPort(l.requested)
			linef(stderr, "%s", pointAt(l.requested, l.ln, lanAddrs(host == "" || strings.Contains(host, ":"))))
		}
	}
	socks.listeners = nil // the server closes them
	if err := p.startWireGuard(serveCtx, srv, log, stderr); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	defer p.wg.close() // once the proxy has shut down: the devices' connections still open are reset
	stop := flushOnHUP(p.cache, log)
	defer stop()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info().Dur("grace", p.grace).Msg("shutting down: letting open connections finish")
	}
	sctx, scancel := context.WithTimeout(context.Background(), p.grace)
	srv.Shutdown(sctx)
	scancel()
	return err
}

// flushOnHUP flushes the upstream session cache on SIGHUP (as does POST
// http://tlsresume.proxy/flush through the proxy).
func flushOnHUP(cache *upstream.Cache, log zerolog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			cache.Flush()
			log.Info().Msg("flushed the upstream session cache (SIGHUP)")
		}
	}()
	return func() { signal.Stop(hup); close(hup) }
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// recordLogBuffer is how many events the --log writer may fall behind by
// before records are lost: a burst of 64k connections.
const recordLogBuffer = 1 << 16

// listener is one bound socket, the address it was asked for, and the
// mode that serves it.
type listener struct {
	mode, requested string
	ln              net.Listener
}

// bind binds every listener the flags ask for (one process may run the
// CONNECT proxy, the transparent listener and the SNI/HTTP listeners at
// once); what serves each is chosen once the proxy exists.
func (p *proxyFlags) bind(ctx context.Context, log zerolog.Logger) ([]listener, error) {
	var out []listener
	for _, l := range []struct{ mode, addr string }{
		{"connect", p.listen}, {"transparent", p.transparent}, {"sni", p.sniListen}, {"http", p.httpListen},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := listen(ctx, l.mode, l.addr, log)
		if err != nil {
			for _, o := range out {
				o.ln.Close()
			}
			return nil, err
		}
		out = append(out, listener{mode: l.mode, requested: l.addr, ln: ln})
	}
	if len(out) == 0 && p.dnsListen == "" && p.wg.listen == "" {
		return nil, errors.New("no listener: give --listen, --transparent, --sni-listen, --http-listen, --dns or --wireguard")
	}
	return out, nil
}

// listen binds addr for mode. The transparent listener asks for
// IP_TRANSPARENT, which TPROXY needs; without the privilege it is a plain
// socket, which REDIRECT still reaches.
func listen(ctx context.Context, mode, addr string, log zerolog.Logger) (net.Listener, error) {
	if mode != "transparent" {
		return net.Listen("tcp", addr)
	}
	ln, err := proxy.ListenTransparent(ctx, addr)
	if errors.Is(err, proxy.ErrNoTransparent) {
		log.Warn().Err(err).Str("listen", addr).Msg("listening without IP_TRANSPARENT: TPROXY rules will not reach this listener (REDIRECT still does)")
		ln, err = net.Listen("tcp", addr)
	}
	return ln, err
}
