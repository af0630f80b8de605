package proxy

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// Server is the intercepting proxy. Create it with New, run it with Serve,
// stop it with Shutdown.
type Server struct {
	cfg        Config
	ctx        context.Context // cancelled when Shutdown gives up waiting: ends dials and handshakes
	cancel     context.CancelFunc
	events     hub // every record's open and close events, to any number of subscribers
	clientBase *tls.Config
	pool       *pool // --upstream-reuse pool; nil when pairing
	relay      *relay
	magic      http.Handler
	learned    *learned  // what is learned across connections, of origins and clients
	fallbacks  fallbacks // QUIC connections blocked (--quic block), until their TCP fallback
	verified   verifyCache

	selfMu  sync.Mutex
	self    []netip.AddrPort // listener addresses, to refuse connecting to ourselves
	closers []func()         // close the listeners of ServeTransparent/ServeSNI/ServeHostHTTP

	httpSrv  *http.Server
	ids      *idSeq
	rotating sync.Once      // the ticket-key rotation starts with the first Serve*
	bg       sync.WaitGroup // background goroutines: ticket-key rotation
	wg       sync.WaitGroup // hijacked connections still open
	mu       sync.Mutex
	gate     *gate // admits client connections on every listener (--allow, --max-conns)
	active   map[net.Conn]struct{}
	closing  atomic.Bool
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Issuer == nil {
		return nil, errors.New("proxy: Config.Issuer is required")
	}
	if cfg.QUIC != QUICPass && cfg.QUIC != QUICBlock {
		return nil, fmt.Errorf("proxy: Config.QUIC %q: want %q or %q", cfg.QUIC, QUICPass, QUICBlock)
	}
	if cfg.TicketRotation < MinTicketRotation {
		return nil, fmt.Errorf("proxy: ticket rotation every %v: want at least %v", cfg.TicketRotation, MinTicketRotation)
	}
	if cfg.TicketKeys == nil {
		k, err := LoadTicketKeys("", cfg.Now())
		if err != nil {
			return nil, err
		}
		cfg.TicketKeys = k
	}
	if cfg.Upstream == nil {
		c, err := upstream.NewCache(upstream.CacheConfig{Now: cfg.Now})
		if err != nil {
			return nil, err
		}
		cfg.Upstream = c
	}
	s := &Server{cfg: cfg, learned: newLearned(), active: map[net.Conn]struct{}{}}
	s.gate = newGate(s, cfg.MaxConns)
	ids, err := loadIDs(cfg.IDFile)
	if err != nil {
		return nil, err
	}
	s.ids = ids
	ids.warn = func(err error) {
		cfg.Log.Warn().Err(err).Str("file", cfg.IDFile).Msg("connection ids could not be saved: the next run may reuse some of this run's ids")
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.clientBase = &tls.Config{
		MinVersion:   cfg.ClientMinVersion,
		KeyLogWriter: cfg.KeyLog,
		Time:         cfg.Now,
	}
	s.clientBase.SetSessionTicketKeys(cfg.TicketKeys.Keys())
	s.relay = newRelay(s)
	if cfg.UpstreamReuse == ReusePool {
		s.pool = newPool(s)
	}
	s.magic = s.magicHandler()
	s.httpSrv = &http.Server{
		Handler:           s,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: cfg.ConnectTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          httpErrorLog(cfg.Log),
		ConnContext:       withConn,
	}
	return s, nil
}

// Serve accepts connections on ln until ctx is done or Shutdown is called.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.addSelf(ln)
	s.startRotation()
	stop := context.AfterFunc(ctx, func() { s.Shutdown(context.Background()) })
	defer stop()
	err := s.httpSrv.Serve(&tlsToProxy{Listener: s.gate.listener(ln, true), s: s})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets open connections finish until ctx is done,
// then cancels their dials and handshakes and closes them. Every
// connection's record is published before it returns, and then every
// subscription ends. It waits for every goroutine the server started.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.selfMu.Lock()
	for _, c := range s.closers {
		c()
	}
	s.selfMu.Unlock()
	err := s.httpSrv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.active {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.cancel()
	s.relay.close(ctx)
	if s.pool != nil {
		s.pool.close()
	}
	s.bg.Wait()
	s.events.close()
	return err
}

// startRotation starts rotating the client ticket keys on schedule, once,
// until Shutdown.
func (s *Server) startRotation() {
	s.rotating.Do(func() {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.rotateTickets()
		}()
	})
}

func (s *Server) rotateTickets() {
	t := time.NewTicker(s.cfg.TicketRotation)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.RotateTicketKeys(false); err != nil {
				s.cfg.Log.Error().Err(err).Msg("rotate ticket keys")
			}
		}
	}
}

// RotateTicketKeys starts encrypting client tickets under a new key. The
// older keys still decrypt (tickets issued under them keep resuming until
// they are 7 days old) unless forget is set: then every ticket issued
// before no longer decrypts, as after a server lost its keys (seed 004).
func (s *Server) RotateTicketKeys(forget bool) error {
	k := s.cfg.TicketKeys
	rotate := k.Rotate
	if forget {
		rotate = k.Forget
	}
	if err := rotate(s.cfg.Now()); err != nil {
		return err
	}
	s.clientBase.SetSessionTicketKeys(k.Keys())
	s.cfg.Log.Info().Str("key", k.currentID()).Bool("forget", forget).Msg("rotated client ticket keys")
	return nil
}

// TicketKeys lists the client ticket keys (ids and ages, never secrets).
func (s *Server) TicketKeys() []KeyInfo { return s.cfg.TicketKeys.Info() }

// ServeHTTP is the proxy's front door: CONNECT is intercepted, other
// requests are proxied as a plain forward proxy.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.admit(r); err != nil {
		status := http.StatusForbidden
		if errors.Is(err, errAuth) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="tlsresume"`)
			status = http.StatusProxyAuthRequired
		}
		s.cfg.Log.Warn().Str("client", r.RemoteAddr).Err(err).Msg("refuse request")
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), status)
		return
	}
	if r.Method != http.MethodConnect || isMagic(r.Host) {
		establishRequest(r) // a CONNECT keeps its slot once its hello arrives
	}
	switch {
	case r.Method == http.MethodConnect:
		s.handleConnect(w, r)
	case isMagic(r.URL.Host) || (r.URL.Host == "" && !r.URL.IsAbs()):
		// http://tlsresume.proxy/ through the proxy, or the proxy's own
		// address opened in a browser.
		s.magic.ServeHTTP(w, r)
	default:
		s.relay.serveForward(w, r)
	}
}

var errAuth = errors.New("proxy authentication required")

// admit checks the client network, credentials and loops.
func (s *Server) admit(r *http.Request) error {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return fmt.Errorf("unreadable client address %q", r.RemoteAddr)
	}
	if !s.allowed(ap.Addr().Unmap()) {
		return fmt.Errorf("client %s is not in --allow", ap.Addr())
	}
	if s.cfg.Auth != "" && !validAuth(r.Header.Get("Proxy-Authorization"), s.cfg.Auth) {
		return errAuth
	}
	if r.Method == http.MethodConnect {
		if isMagic(r.Host) {
			return nil
		}
		target := inspect.Cut(r.Host, inspect.MaxNameLen)
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil || port == "" {
			return fmt.Errorf("CONNECT target %q is not host:port", target)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return fmt.Errorf("CONNECT target %q has a bad port", target)
		}
		if s.loops(r.Context(), host, uint16(p)) {
			return fmt.Errorf("CONNECT %s would reach tlsresume itself (a loop)", target)
		}
	}
	return nil
}

// refuseLoop says why a request to hostport (defaultPort when it names
// none) must be refused because it would reach tlsresume itself, or nil.
func (s *Server) refuseLoop(ctx context.Context, hostport, defaultPort string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), defaultPort
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err == nil && s.loops(ctx, host, uint16(p)) {
		return fmt.Errorf("%s would reach tlsresume itself (a loop)", inspect.Cut(hostport, inspect.MaxNameLen))
	}
	return nil // a bad port fails at the dial, which says so
}

// addSelf remembers a listener's address, so connecting to it is refused.
func (s *Server) addSelf(ln net.Listener) {
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		s.selfMu.Lock()
		s.self = append(s.self, ap)
		s.selfMu.Unlock()
	}
}

// addCloser registers what Shutdown must close.
func (s *Server) addCloser(f func()) {
	s.selfMu.Lock()
	s.closers = append(s.closers, f)
	s.selfMu.Unlock()
}

// isSelfAddr reports whether a connection's remote address is one of
// tlsresume's own listeners.
func (s *Server) isSelfAddr(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && s.isSelf(ap)
}

// isSelf reports whether addr reaches one of tlsresume's own listeners:
// the Server's and Config.SelfAddrs. A listener on an unspecified address
// (0.0.0.0, ::) is reached on its port by every local address.
func (s *Server) isSelf(addr netip.AddrPort) bool {
	a := addr.Addr().Unmap().WithZone("")
	unspecified := false
	match := func(l netip.AddrPort) bool {
		if l.Port() != addr.Port() {
			return false
		}
		la := l.Addr().Unmap().WithZone("")
		if la.IsUnspecified() {
			unspecified = true
			return false
		}
		// Linux connects an unspecified destination to loopback.
		return la == a || a.IsUnspecified() && la.IsLoopback()
	}
	s.selfMu.Lock()
	found := slices.ContainsFunc(s.self, match)
	s.selfMu.Unlock()
	found = found || slices.ContainsFunc(s.cfg.SelfAddrs, match)
	return found || unspecified && isLocalAddr(a)
}

// isLocalAddr reports whether a connection to a stays on this machine: a
// loopback or unspecified address (Linux connects 0.0.0.0 to itself), or
// the address of one of its interfaces.
func isLocalAddr(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: refusing is the safe side
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap().WithZone("") == a {
			return true
		}
	}
	return false
}

// selfPort reports whether one of tlsresume's own listeners is on port.
func (s *Server) selfPort(port uint16) bool {
	on := func(l netip.AddrPort) bool { return l.Port() == port }
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	return slices.ContainsFunc(s.self, on) || slices.ContainsFunc(s.cfg.SelfAddrs, on)
}

// loops says whether host:port names one of tlsresume's own listeners. A
// name is looked up, as the dial would look it up, only when the port is
// one tlsresume listens on. The dial checks again what it connects to
// (dialer): a name may answer otherwise the second time.
func (s *Server) loops(ctx context.Context, host string, port uint16) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return s.isSelf(netip.AddrPortFrom(ip, port))
	}
	if !s.selfPort(port) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	res := s.cfg.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	ips, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return false // the dial will say what is wrong
	}
	return slices.ContainsFunc(ips, func(ip netip.Addr) bool { return s.isSelf(netip.AddrPortFrom(ip, port)) })
}

// dialer dials every upstream connection. Its Control refuses an address
// that reaches one of tlsresume's own listeners: it sees the address
// actually connected to, after name resolution, so a name that resolves
// (or rebinds) to tlsresume between the check of a request's target and
// the dial still makes no loop.
func (s *Server) dialer() *net.Dialer {
	return &net.Dialer{Timeout: s.cfg.DialTimeout, Resolver: s.cfg.Resolver, Control: s.refuseSelf}
}

func (s *Server) refuseSelf(_, address string, _ syscall.RawConn) error {
	if ap, err := netip.ParseAddrPort(address); err == nil && s.isSelf(ap) {
		return errLoop
	}
	return nil
}

func (s *Server) allowed(a netip.Addr) bool {
	if len(s.cfg.Allow) == 0 {
		return a.IsLoopback()
	}
	for _, p := range s.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func validAuth(header, want string) bool {
	const prefix = "Basic "
	if !strings.HasPrefix(header, prefix) {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(header[len(prefix):])
	return err == nil && string(got) == want
}
