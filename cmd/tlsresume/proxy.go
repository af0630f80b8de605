package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/proxy"
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

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(proxyGCPercent)
	}
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var p proxyFlags
	p.register(fs)
	setUsage(fs, "tlsresume [proxy] [flags]", proxyExamples)
	pos, exit, ok := parseFlags(fs, args, stderr)
	if !ok {
		return exit
	}
	if len(pos) > 0 {
		linef(stderr, "tlsresume proxy: unexpected argument %q (run \"tlsresume proxy --help\")", pos[0])
		return 2
	}
	if p.config != "" {
		if err := applyConfigFile(fs, p.config); err != nil {
			linef(stderr, "tlsresume proxy: %v", err)
			return 2
		}
	}
	if err := p.web.validate(); err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return 2
	}
	if err := p.checkNumbers(); err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return 2
	}
	if _, err := p.checkAddrs(); err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return 2
	}
	// Bind every socket first: a start that fails on a taken port creates
	// and rewrites nothing (no CA, no ticket keys, no log file).
	bootLog := newLogger(stderr, p.jsonLog, p.verbose)
	listeners, err := p.bind(ctx, bootLog)
	if err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return 1
	}
	webLn, err := p.web.listen(bootLog)
	if err != nil {
		for _, l := range listeners {
			l.ln.Close()
		}
		linef(stderr, "tlsresume proxy: %v", err)
		return 1
	}
	closeSockets := func() {
		for _, l := range listeners {
			l.ln.Close()
		}
		if webLn != nil {
			webLn.Close()
		}
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The DNS server's sockets too (build then uses the server it made).
	if err := p.buildDNS(&proxy.Config{Log: bootLog}); err != nil {
		closeSockets()
		linef(stderr, "tlsresume proxy: %v", err)
		return 2
	}
	if p.dnsSrv != nil {
		if err := p.dnsSrv.Start(serveCtx); err != nil {
			closeSockets()
			linef(stderr, "tlsresume proxy: --dns: %v", err)
			return 1
		}
		defer p.dnsSrv.Close()
	}
	cfg, closers, err := p.build(stdout, stderr)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if err != nil {
		closeSockets()
		linef(stderr, "tlsresume proxy: %v", err)
		return 2
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		closeSockets()
		linef(stderr, "tlsresume proxy: %v", err)
		return 1
	}
	for i := range listeners {
		listeners[i].serve = map[string]func(context.Context, net.Listener) error{
			"connect": srv.Serve, "transparent": srv.ServeTransparent, "sni": srv.ServeSNI, "http": srv.ServeHostHTTP,
		}[listeners[i].mode]
	}
	if rl := p.recordLog; rl != nil {
		// The record log is one subscriber of the record stream, with room to
		// fall far behind: Shutdown ends the stream after the last record.
		if rl.Repaired {
			cfg.Log.Warn().Str("log", p.logFile).Msg("the record log ended in a partial line (an earlier run was cut short): added a newline before the new records")
		}
		events := srv.Subscribe(context.Background(), recordLogBuffer)
		written := make(chan struct{})
		go func() {
			defer close(written)
			rl.Follow(events, cfg.Log)
		}()
		defer func() {
			srv.Shutdown(context.Background()) // ends the stream if nothing else did
			<-written
			if err := rl.Close(); err != nil {
				// Records were lost: the run did not do its job.
				linef(stderr, "tlsresume proxy: --log %s: %v", p.logFile, err)
				if code == 0 {
					code = 1
				}
			}
		}()
	}
	if p.dnsSrv != nil {
		cfg.Log.Info().Str("listen", p.dnsSrv.Addr()).Str("mode", "dns").Str("upstream", p.dnsSrv.Upstream()).Msg("listening")
	}
	errc := make(chan error, len(listeners))
	for _, l := range listeners {
		cfg.Log.Info().Str("listen", l.ln.Addr().String()).Str("mode", l.mode).Msg("listening")
		go func() { errc <- l.serve(serveCtx, l.ln) }()
	}
	for _, l := range listeners {
		if l.mode == "connect" {
			linef(stderr, "Point a client's HTTP proxy setting at %s; get the CA at http://%s/ through it (tlsresume ca show says how to trust it).", l.ln.Addr(), proxy.MagicHost)
		}
	}
	if webLn != nil {
		wcfg, err := p.web.config(webLn)
		if err != nil {
			linef(stderr, "tlsresume proxy: %v", err)
			return 1
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
		wcfg.Passthrough = &web.PassthroughControl{List: func() any { return srv.AutoPassthroughs() }, Reset: srv.ResetAutoPassthrough}
		wcfg.TicketKeys = &web.TicketKeyControl{List: func() any { return srv.TicketKeys() }, Rotate: srv.RotateTicketKeys}
		view := web.New(wcfg)
		// The view is a subscriber with room to fall behind by a burst; it
		// never slows the proxy (the stream drops for it, and it says so).
		go view.Feed(serveCtx, srv.Subscribe(serveCtx, 1<<16))
		viewDone := serveView(serveCtx, view, webLn, wcfg.Token, stderr, cfg.Log)
		defer func() { cancel(); <-viewDone }()
	}
	// SIGHUP flushes the upstream session cache (as does POST
	// http://tlsresume.proxy/flush through the proxy).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			cfg.Upstream.Flush()
			cfg.Log.Info().Msg("flushed the upstream session cache (SIGHUP)")
		}
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
		cfg.Log.Info().Dur("grace", p.grace).Msg("shutting down: letting open connections finish")
	}
	sctx, scancel := context.WithTimeout(context.Background(), p.grace)
	srv.Shutdown(sctx)
	scancel()
	cancel()
	if err != nil {
		linef(stderr, "tlsresume proxy: %v", err)
		return 1
	}
	return 0
}

// recordLogBuffer is how many events the --log writer may fall behind by
// before records are lost: a burst of 64k connections.
const recordLogBuffer = 1 << 16

// listener is one bound socket and the mode that serves it.
type listener struct {
	mode  string
	ln    net.Listener
	serve func(context.Context, net.Listener) error
}

// bind binds every listener the flags ask for (one process may run the
// CONNECT proxy, the transparent listener and the SNI/HTTP listeners at
// once); what serves each is set once the proxy exists.
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
		out = append(out, listener{mode: l.mode, ln: ln})
	}
	if len(out) == 0 && p.dnsListen == "" {
		return nil, errors.New("no listener: give --listen, --transparent, --sni-listen, --http-listen or --dns")
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
