package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/dns"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// build turns the flags into a proxy.Config, concern by concern: who may
// connect, the client leg, the state kept beside the CA, the upstream
// leg, the DNS server and what is written out. closers flush and close
// files.
func (p *proxyFlags) build(stdout, stderr io.Writer) (proxy.Config, []func(), error) {
	var cfg proxy.Config
	cfg.Log = newLogger(stderr, p.jsonLog, p.verbose)
	var closers []func()
	steps := []func(*proxy.Config) error{
		p.buildAccess, p.buildClientLeg, p.buildState, p.buildDNS, p.buildWireGuard,
		func(cfg *proxy.Config) error {
			var err error
			closers, err = p.buildUpstream(cfg)
			return err
		},
		func(cfg *proxy.Config) error {
			c, err := p.buildOutputs(cfg)
			closers = append(closers, c...)
			return err
		},
	}
	for _, step := range steps {
		if err := step(&cfg); err != nil {
			return cfg, closers, err
		}
	}
	return cfg, closers, nil
}

// checkModes refuses a value of the client leg's and the upstream leg's
// mode flags before anything is bound, so that a usage error is one
// whatever the ports (build repeats the work and keeps the result).
func (p *proxyFlags) checkModes() error {
	scratch := proxy.Config{Log: zerolog.Nop()}
	if err := p.buildClientLeg(&scratch); err != nil {
		return err
	}
	if _, err := p.upstreamCerts.identities(); err != nil {
		return err
	}
	switch p.upstreamReuse {
	case proxy.ReusePair, proxy.ReusePool:
		return nil
	}
	return fmt.Errorf("--upstream-reuse %q: want pair or pool", p.upstreamReuse)
}

// buildAccess: who may use the proxy, and how many at once.
func (p *proxyFlags) buildAccess(cfg *proxy.Config) error {
	var err error
	if cfg.Allow, err = p.checkAddrs(); err != nil {
		return err
	}
	cfg.Auth = p.auth
	cfg.MaxConns = p.maxConns
	cfg.IdleTimeout = p.idleTimeout
	return nil
}

// buildClientLeg: what the client is answered with, which clients are
// passed through, and what becomes of the tickets it offers.
func (p *proxyFlags) buildClientLeg(cfg *proxy.Config) error {
	var err error
	cfg.Passthrough = splitList(p.passthrough)
	cfg.AutoPassthrough = p.autoPassthrough
	if cfg.ClientResumption, err = proxy.ParseResumptionRules(p.clientResumption); err != nil {
		return err
	}
	switch cfg.ClientAuth = p.clientAuth; cfg.ClientAuth {
	case proxy.ClientAuthMirror, proxy.ClientAuthRequest, proxy.ClientAuthRequire, proxy.ClientAuthNone:
	default:
		return fmt.Errorf("--client-auth %q: want mirror, request, require or none", p.clientAuth)
	}
	switch cfg.SessionIDClients = p.sessionIDClients; cfg.SessionIDClients {
	case "passthrough":
		cfg.Log.Info().Msg("clients that resume only by session ID (TLS 1.2 without session_ticket) are passed through, so they resume as they do directly; their HTTP is not seen (--session-id-clients intercept shows it instead)")
	case "intercept":
	default:
		return fmt.Errorf("--session-id-clients %q: want passthrough or intercept", p.sessionIDClients)
	}
	switch cfg.Mirror = p.mirror; cfg.Mirror {
	case proxy.MirrorOverlap, proxy.MirrorWait:
	case proxy.MirrorEarly:
		cfg.Mirror = proxy.MirrorOverlap
		cfg.Log.Warn().Msg("--mirror early is the old name of --mirror overlap (\"early\" now means 0-RTT data only); it still works")
	default:
		return fmt.Errorf("--mirror %q: want overlap or wait", p.mirror)
	}
	if cfg.ClientTickets, err = ticketsMode(p.clientTickets); err != nil {
		return err
	}
	if cfg.ClientMaxVersion, err = tlsVersion("--client-max-tls", p.clientMax); err != nil {
		return err
	}
	cfg.ClientMinVersion, err = tlsVersion("--client-min-tls", p.clientMin)
	return err
}

// buildState: the CA, the client ticket keys and the connection ids, kept
// in the CA directory.
func (p *proxyFlags) buildState(cfg *proxy.Config) error {
	dir, err := certs.Dir(p.caDir)
	if err != nil {
		return err
	}
	ca, created, err := certs.Init(dir, time.Now())
	if err != nil {
		return err
	}
	if created {
		cfg.Log.Info().Str("dir", dir).Msg("created a new CA: trust it on your devices (tlsresume ca show)")
	}
	cfg.Log.Info().Str("ca", ca.CertFile()).Str("sha256", ca.Fingerprint()).Msg("using CA")
	cfg.CA = ca
	if cfg.Issuer, err = certs.NewIssuer(ca, certs.IssuerOptions{}); err != nil {
		return err
	}
	cfg.IDFile = filepath.Join(dir, "conn-ids")
	cfg.TicketRotation = p.ticketRotation
	if cfg.TicketKeys, err = proxy.LoadTicketKeys(filepath.Join(dir, "ticket-keys.json"), time.Now()); err != nil {
		return err
	}
	switch {
	case p.forgetKeys:
		err = cfg.TicketKeys.Forget(time.Now())
		cfg.Log.Warn().Msg("forgot the client ticket keys (--forget-ticket-keys): no ticket issued before resumes")
	case p.rotateKeys:
		err = cfg.TicketKeys.Rotate(time.Now())
		cfg.Log.Info().Msg("rotated the client ticket keys (--rotate-ticket-keys): earlier tickets still resume")
	}
	return err
}

// buildUpstream: the upstream leg's session cache, trust and identities,
// and how connections share it.
func (p *proxyFlags) buildUpstream(cfg *proxy.Config) (closers []func(), err error) {
	switch cfg.UpstreamReuse = p.upstreamReuse; cfg.UpstreamReuse {
	case proxy.ReusePair:
	case proxy.ReusePool:
		cfg.Log.Info().Msg("--upstream-reuse pool: client connections share upstream connections per origin; a record then names the connection whose upstream connection carried it (reused_conn), and upstream resumption is seen only when the pool dials")
	default:
		return nil, fmt.Errorf("--upstream-reuse %q: want pair or pool", p.upstreamReuse)
	}
	if cfg.UpstreamClientCerts, err = p.upstreamCerts.identities(); err != nil {
		return nil, err
	}
	cache, err := upstream.NewCache(upstream.CacheConfig{
		Size: p.upstreamCacheSize, TTL: p.upstreamTTL, Disabled: !p.upstreamTickets, File: p.upstreamCacheFile,
	})
	if err != nil {
		return nil, err
	}
	cfg.Upstream, p.cache = cache, cache
	if p.upstreamCacheFile != "" {
		closers = append(closers, autosave(cache, cfg))
	}
	if p.upstreamCA != "" {
		if cfg.UpstreamRoots, err = rootsWith(p.upstreamCA); err != nil {
			return closers, err
		}
	}
	cfg.InsecureUpstream = p.insecureUpstream
	if p.insecureUpstream {
		cfg.Log.Warn().Msg("--insecure-upstream: origin certificates are not verified; anyone on the path to an origin can read and change its traffic (every record says verified: false)")
	}
	return closers, nil
}

// autosave saves the upstream cache every second in which it changed, so
// a kill -9 loses at most a second of sessions; the closer saves it once
// more.
func autosave(cache *upstream.Cache, cfg *proxy.Config) (closer func()) {
	ctx, stop := context.WithCancel(context.Background())
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		cache.Autosave(ctx, time.Second, func(err error) {
			cfg.Log.Error().Err(err).Msg("saving the upstream session cache")
		})
	}()
	return func() {
		stop()
		<-saved
		if err := cache.Save(); err != nil {
			cfg.Log.Error().Err(err).Msg("saving the upstream session cache")
		}
	}
}

// rootsWith is the system's roots and the CA certificates in file.
func rootsWith(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--upstream-ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--upstream-ca %s holds no PEM certificate", file)
	}
	return pool, nil
}

// buildOutputs: the record log and the key log.
func (p *proxyFlags) buildOutputs(cfg *proxy.Config) (closers []func(), err error) {
	if p.logFile != "" {
		if p.recordLog, err = proxy.OpenRecordLog(p.logFile); err != nil {
			return nil, err
		}
	}
	if p.keylog != "" {
		f, err := os.OpenFile(p.keylog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		cfg.KeyLog = &lockedWriter{w: f}
		closers = append(closers, func() { f.Close() })
	}
	return closers, nil
}

// lockedWriter serializes writes from both legs' handshakes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// buildDNS creates the DNS-redirect server the flags ask for (once: runProxy
// makes and starts it before anything is written), and makes tlsresume's
// own lookups go to the upstream resolver, never to itself.
func (p *proxyFlags) buildDNS(cfg *proxy.Config) error {
	if p.dnsSrv == nil {
		if p.dnsListen == "" {
			if p.dnsUpstream != "" {
				cfg.Resolver = dns.Resolver(p.dnsUpstream)
			}
			return nil
		}
		v4, err := netip.ParseAddr(p.dnsAnswer)
		if err != nil || !v4.Is4() {
			return fmt.Errorf("--dns needs --dns-answer, the proxy's IPv4 address as devices reach it (e.g. --dns-answer 192.168.1.20)")
		}
		allow, err := p.checkAddrs()
		if err != nil {
			return err
		}
		// The proxy's --allow: a resolver open to anyone would amplify.
		dc := dns.Config{Listen: p.dnsListen, AnswerV4: v4, Upstream: p.dnsUpstream, Allow: allow, Log: cfg.Log}
		if p.dnsAnswer6 != "" {
			if dc.AnswerV6, err = netip.ParseAddr(p.dnsAnswer6); err != nil || !dc.AnswerV6.Is6() {
				return fmt.Errorf("--dns-answer6 %q: want an IPv6 address", p.dnsAnswer6)
			}
		}
		if names := splitList(p.intercept); len(names) > 0 {
			// Keep the CA download page reachable by name.
			dc.Intercept = append(names, proxy.MagicHost)
		}
		if p.dnsSrv, err = dns.New(dc); err != nil {
			return err
		}
	}
	srv := p.dnsSrv
	cfg.Resolver = dns.Resolver(srv.Upstream())
	cfg.RecentName = func(ip netip.Addr) (string, bool) { return srv.Recent(ip, 30*time.Second) }
	return nil
}
