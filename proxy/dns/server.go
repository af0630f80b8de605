package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/netutil"
)

// maxQuery is the largest query accepted, over UDP or TCP. A real query is
// one question (a name of at most 255 bytes) and an OPT record whose
// options (cookie, padding to a 128-byte block per RFC 8467, client subnet)
// stay far below this; a larger one is answered FORMERR.
const maxQuery = 4096

// Server is a DNS server that intercepts names for the proxy and forwards
// the rest. Create it with New, run it with Start, stop it with Close.
type Server struct {
	cfg     Config
	match   matcher
	journal *journal
	names   *names // a forwarder's memory of which name each answered address was for; nil otherwise
	guard   *guard // Allow and the rate limit, checked before a query is parsed

	udpClient, tcpClient *dns.Client
	forwards             chan struct{} // a slot per forwarded query in flight

	// base is cancelled by Close so that forwards in flight end at once.
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	started  bool
	addr     string
	udp, tcp *dns.Server

	stopOnce sync.Once
	stopped  chan struct{} // closed by stop
	wg       sync.WaitGroup
	errMu    sync.Mutex
	serveErr error
}

// New checks cfg, applies its defaults and resolves its upstream. It does
// not listen: see Start.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(defaultResolvConf); err != nil {
		return nil, err
	}
	return newServer(cfg), nil
}

func newServer(cfg Config) *Server {
	base, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		match:     newMatcher(cfg.Intercept),
		journal:   newJournal(),
		guard:     newGuard(cfg),
		udpClient: &dns.Client{Net: "udp", UDPSize: dns.MinMsgSize},
		tcpClient: &dns.Client{Net: "tcp"},
		forwards:  make(chan struct{}, cfg.MaxForwards),
		base:      base,
		cancel:    cancel,
		stopped:   make(chan struct{}),
	}
}

// Start listens on cfg.Listen over UDP and TCP and returns once both are
// serving. The server runs until Close is called or ctx is done.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("dns: server already started")
	}
	if s.cfg.forwardOnly {
		return errors.New("dns: a forwarder listens on nothing: hand it connections (ServeConn)")
	}
	s.started = true
	select {
	case <-s.stopped:
		return errors.New("dns: server closed")
	default:
	}

	pc, ln, err := listen(ctx, s.cfg.Listen)
	if err != nil {
		return err
	}
	s.addr = pc.LocalAddr().String()
	s.udp, s.tcp = s.dnsServer(), s.dnsServer()
	s.udp.PacketConn = pc
	// Refused peers are closed before they take one of the slots.
	s.tcp.Listener = netutil.LimitListener(allowListener{ln, s.guard}, s.cfg.MaxTCPConns)

	var failed error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		ready, done := make(chan struct{}), make(chan struct{})
		srv.NotifyStartedFunc = func() { close(ready) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(done)
			if err := srv.ActivateAndServe(); err != nil {
				s.setServeErr(err)
			}
		}()
		// Wait before starting the next one, so that stopping finds
		// each server either serving or returned (miekg/dns's Shutdown
		// does nothing to a server that has not started yet).
		select {
		case <-ready:
		case <-done:
			failed = s.err()
			if failed == nil {
				failed = errors.New("dns: server stopped while starting")
			}
		}
		if failed != nil {
			break
		}
	}
	if failed != nil {
		s.stopLocked()
		pc.Close() // in case its server never ran
		ln.Close()
		s.wg.Wait()
		return fmt.Errorf("dns: starting on %s: %w", s.addr, failed)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.stop()
		case <-s.stopped:
		}
	}()
	s.cfg.Log.Info().Str("addr", s.addr).Str("upstream", s.cfg.Upstream).Msg("serving dns")
	return nil
}

// dnsServer returns a miekg/dns server for one transport, handled by s.
func (s *Server) dnsServer() *dns.Server {
	return &dns.Server{
		Handler:        handler{s},
		UDPSize:        maxQuery + 1, // a longer datagram reads as maxQuery+1 bytes: oversized
		ReadTimeout:    2 * time.Second,
		WriteTimeout:   2 * time.Second,
		MaxTCPQueries:  -1, // each connection's queries are served one at a time; the idle timeout (8s) ends it
		DecorateReader: func(r dns.Reader) dns.Reader { return checkReader{r, s} },
		MsgAcceptFunc:  s.accept,
		MsgInvalidFunc: s.invalid,
	}
}

// listen opens UDP and TCP on the same address. With port 0 it takes the
// port the UDP socket got and retries a few times if TCP has it in use.
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	host, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listening on udp %s: %w", addr, err)
		}
		tcpAddr := pc.LocalAddr().(*net.UDPAddr)
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(tcpAddr.Port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("dns: listening on tcp %s: %w", addr, err)
		}
	}
}

// Addr returns the address the server listens on (UDP and TCP), "" before
// Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Upstream returns the resolver forwarded queries go to, "ip:port"; pass it
// to Resolver for tlsresume's own lookups.
func (s *Server) Upstream() string { return s.cfg.Upstream }

// Close stops both listeners, ends forwards in flight and waits for every
// goroutine of the server. It returns the error that stopped serving early,
// if any.
func (s *Server) Close() error {
	s.stop()
	s.wg.Wait()
	if err := s.err(); err != nil {
		return fmt.Errorf("dns: serving on %s: %w", s.Addr(), err)
	}
	return nil
}

func (s *Server) err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.serveErr
}

// stop shuts the listeners down without waiting for the goroutines.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	s.stopOnce.Do(func() {
		close(s.stopped)
		s.cancel()
		for _, srv := range []*dns.Server{s.udp, s.tcp} {
			if srv != nil {
				// An error means this one is not serving: it never
				// started or it failed, which Start or Close reports.
				_ = srv.Shutdown()
			}
		}
	})
}

func (s *Server) setServeErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.serveErr == nil {
		s.serveErr = err
	}
}

// Recent returns the last intercepted name the client at ip asked for, if
// it asked within maxAge, so that a connection without SNI can be matched to
// the name its client just resolved.
func (s *Server) Recent(ip netip.Addr, maxAge time.Duration) (string, bool) {
	return s.journal.recent(ip, maxAge, s.cfg.Now())
}

// Refusals returns the queries turned away unanswered since New: from
// outside Allow, or over their client's rate.
func (s *Server) Refusals() Refusals { return s.guard.refusals() }

// Answers returns the most recent answers (up to 4096), oldest first.
func (s *Server) Answers() []Answer {
	return s.journal.answers()
}

// accept decides, from its header alone, how a message is handled: the
// checks of dns.DefaultMsgAcceptFunc (responses dropped, one question), and
// only QUERY served (NOTIFY, UPDATE and the rest get NOTIMP).
func (s *Server) accept(h dns.Header) dns.MsgAcceptAction {
	action := dns.DefaultMsgAcceptFunc(h)
	if action == dns.MsgAccept && (h.Bits>>11)&0xF != dns.OpcodeQuery {
		action = dns.MsgRejectNotImplemented
	}
	if action != dns.MsgAccept {
		s.cfg.Log.Debug().Uint16("qdcount", h.Qdcount).Uint16("ancount", h.Ancount).
			Uint16("nscount", h.Nscount).Uint16("arcount", h.Arcount).
			Int("opcode", int(h.Bits>>11)&0xF).Bool("response", h.Bits&(1<<15) != 0).
			Msg("reject dns query")
	}
	return action
}

// invalid logs a message that could not be parsed (miekg/dns then answers
// FORMERR when it could read the header, else nothing).
func (s *Server) invalid(m []byte, err error) {
	s.cfg.Log.Debug().Int("size", len(m)).Err(err).Msg("reject malformed dns query")
}

// checkReader hands miekg/dns a query that fails checkQuery as its bare
// header (all counts zero), which accept then answers FORMERR. miekg/dns is
// lenient where a DNS server should not be: it ignores bytes after the last
// record, takes a message that ends early as having fewer records than its
// header says, and reads a UDP datagram into a buffer of UDPSize, silently
// cutting a longer one.
type checkReader struct {
	dns.Reader
	s *Server
}

// ReadUDP returns the next datagram the guard admits; the others are
// dropped unread.
func (r checkReader) ReadUDP(conn *net.UDPConn, timeout time.Duration) ([]byte, *dns.SessionUDP, error) {
	for {
		m, sess, err := r.Reader.ReadUDP(conn, timeout)
		if err != nil {
			return m, sess, err
		}
		if r.s.guard.admit(sess.RemoteAddr(), "udp") {
			return r.check(m, sess.RemoteAddr()), sess, nil
		}
	}
}

// ReadTCP returns the next query on conn, or an error (which closes conn)
// when its client is over its rate.
func (r checkReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	m, err := r.Reader.ReadTCP(conn, timeout)
	if err != nil {
		return m, err
	}
	if !r.s.guard.admit(conn.RemoteAddr(), "tcp") {
		return nil, errRateLimited
	}
	return r.check(m, conn.RemoteAddr()), nil
}

var errRateLimited = errors.New("dns: client over its rate limit")

func (r checkReader) check(m []byte, client net.Addr) []byte {
	if len(m) < 12 || m[2]&0x80 != 0 { // miekg/dns drops these itself
		return m
	}
	if err := checkQuery(m); err != nil {
		r.s.cfg.Log.Debug().Stringer("client", client).Int("size", len(m)).Err(err).Msg("reject malformed dns query")
		h := make([]byte, 12)
		copy(h, m[:4]) // ID and flags
		return h
	}
	return m
}
