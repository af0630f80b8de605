package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// ErrNoTransparent is wrapped by ListenTransparent's error when the socket
// could not be made transparent: a plain listener still serves REDIRECT.
var ErrNoTransparent = errors.New("proxy: cannot make the listener transparent (IP_TRANSPARENT needs Linux and CAP_NET_ADMIN or CAP_NET_RAW)")

// ListenTransparent listens on addr (TCP) for ServeTransparent with
// IP_TRANSPARENT (IPV6_TRANSPARENT) set, which TPROXY requires of the
// socket it hands connections to (Linux Documentation/networking/tproxy.rst).
// When the option cannot be set the error wraps ErrNoTransparent.
func ListenTransparent(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: setTransparent}
	return lc.Listen(ctx, "tcp", addr)
}

// ServeTransparent accepts connections that the kernel sent to ln instead
// of their destination (iptables/nft REDIRECT or TPROXY; see
// transparentDst): the SNI names the host, and upstream goes to the
// original IP and port. It returns when ctx is done or on Shutdown.
func (s *Server) ServeTransparent(ctx context.Context, ln net.Listener) error {
	return s.acceptLoop(ctx, ln, func(raw net.Conn) {
		dst, err := s.transparentDst(raw)
		s.serve(arrival{conn: raw, dst: dst, source: inspect.SourceTransparent, err: err})
	})
}

// transparentDst is where a connection on a transparent listener was going.
// REDIRECT rewrote the destination: SO_ORIGINAL_DST reads the original from
// the conntrack entry. TPROXY rewrites nothing: the accepted socket's local
// address is the original destination (Linux
// Documentation/networking/tproxy.rst), and SO_ORIGINAL_DST either fails
// (ENOENT: no conntrack entry) or, when conntrack tracks the flow, returns
// that same address. A destination that is tlsresume's own listener means
// nobody redirected the connection.
func (s *Server) transparentDst(raw net.Conn) (netip.AddrPort, error) {
	dst, err := originalDst(raw)
	if err != nil {
		local, perr := netip.ParseAddrPort(raw.LocalAddr().String())
		if perr != nil || s.isSelf(local) {
			return netip.AddrPort{}, fmt.Errorf("original destination unknown: %v (was this connection redirected to tlsresume by iptables/nft REDIRECT or TPROXY?)", err)
		}
		dst = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	}
	if s.isSelf(dst) {
		return netip.AddrPort{}, errors.New("not redirected: the original destination is tlsresume itself")
	}
	return dst, nil
}

// ServeSNI accepts TLS connections that reached tlsresume because its DNS
// server answered with the proxy's address: the SNI (or, without one, the
// name this client just looked up) says where to go, on port 443.
func (s *Server) ServeSNI(ctx context.Context, ln net.Listener) error {
	return s.acceptLoop(ctx, ln, func(raw net.Conn) {
		s.serve(arrival{conn: raw, source: inspect.SourceSNI})
	})
}

// ServeHostHTTP serves plain HTTP that reached tlsresume by DNS, routed by
// the Host header (the SNI listener's partner on port 80).
func (s *Server) ServeHostHTTP(ctx context.Context, ln net.Listener) error {
	s.addSelf(ln)
	srv := &http.Server{
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: s.cfg.ConnectTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          s.httpSrv.ErrorLog,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ap, err := netip.ParseAddrPort(r.RemoteAddr)
			if err != nil || !s.allowed(ap.Addr().Unmap()) {
				http.Error(w, "client not allowed", http.StatusForbidden)
				return
			}
			establishRequest(r)
			if isMagic(r.Host) {
				s.magic.ServeHTTP(w, r)
				return
			}
			r.URL.Scheme, r.URL.Host = "http", r.Host
			s.relay.serveForward(w, r)
		}),
	}
	s.addCloser(func() { srv.Close() })
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	srv.ConnContext = withConn
	if err := srv.Serve(s.gate.listener(ln, true)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// acceptLoop accepts on ln until it is closed, handling each allowed
// connection in its own goroutine.
func (s *Server) acceptLoop(ctx context.Context, ln net.Listener, handle func(net.Conn)) error {
	s.addSelf(ln)
	s.startRotation()
	s.addCloser(func() { ln.Close() })
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	gated := s.gate.listener(ln, false)
	var backoff time.Duration
	for {
		raw, err := gated.Accept()
		if err != nil {
			if s.closing.Load() || ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait, then retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(raw) {
			raw.Close()
			continue
		}
		go handle(raw)
	}
}
