package web

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// DefaultHistory is how many records the view keeps when Config.History is
// zero.
const DefaultHistory = 50_000

// Upstream is the proxy's upstream session cache as the view sees it.
type Upstream interface {
	Stats() upstream.Stats
	Flush()
}

// Config configures a Server. The zero value of each field means its
// documented default.
type Config struct {
	// Addr is the address the view listens on; a name in it (laptop.local)
	// is accepted as Host besides localhost and IP addresses. Default: none.
	Addr string
	// History is how many records are kept, newest last. Default
	// DefaultHistory (--web-history).
	History int
	// Token, when set, is required on every request: ?token= on the first
	// visit (a cookie keeps it), or "Authorization: Bearer TOKEN" from a
	// script. Default: none (the CLI sets one for a non-loopback address).
	Token string
	// CA is offered for download, with install steps. Default: none.
	CA *certs.CA
	// Upstream is the proxy's upstream cache: its statistics and a flush
	// button. Default: none (a view of saved files has no proxy).
	Upstream Upstream
	// TicketKeys lists and rotates the proxy's client ticket keys. Default:
	// none (a view of saved files has no proxy).
	TicketKeys *TicketKeyControl
	// Passthrough lists and resets --auto-passthrough's decisions.
	// Default: none (a view of saved files has no proxy).
	Passthrough *PassthroughControl
	// Refused returns the proxy's refusals so far, by reason (not_allowed,
	// at_cap, evicted), for /metrics. Default: none.
	Refused func() map[string]uint64
	// Unwritten returns how many records the --log file could not take,
	// for /metrics. Default: none.
	Unwritten func() uint64
	// Devices returns the WireGuard devices' counters (tlsresume proxy
	// --wireguard), for /metrics. Default: none.
	Devices func() []DeviceCounts
	// WireGuard is the proxy's WireGuard server, for the device page
	// (/devices): each device's QR code, configuration and counters.
	// Default: none, and no device page (a view of saved files, a proxy
	// without --wireguard).
	WireGuard WireGuardPanel
	// Streams bounds the event streams (/api/events): how many, how far
	// behind each may fall, how much one replay sends, how long one write
	// may wait. Default: StreamLimits' defaults.
	Streams StreamLimits
	// Source says where the records come from, for the page's header:
	// "live" (a running proxy) or the files' names. Default "live".
	Source string
	// Log is the console logger. Default zerolog.Nop().
	Log zerolog.Logger
}

// PassthroughControl is --auto-passthrough as the view sees it: List
// returns the clients passed through (JSON-encodable), Reset intercepts
// them all again and says how many there were.
type PassthroughControl struct {
	List  func() any
	Reset func() int
}

// TicketKeyControl is the proxy's client ticket keys as the view sees
// them: List returns them (ids and ages, never secrets) as JSON-encodable
// data; Rotate starts a new key, forgetting the old ones when told to.
type TicketKeyControl struct {
	List   func() any
	Rotate func(forget bool) error
}

// Server is the live view: it keeps the newest records of a record stream
// (or of saved files), serves them to browsers and scripts, and counts them
// for Prometheus. Create it with New, feed it with Feed or Add, serve it
// with Serve or Handler.
type Server struct {
	cfg     Config
	hist    *history
	metrics *metrics
	subs    subscribers
	handler http.Handler
	// streamLost is how many events the record stream dropped before they
	// reached the view (it fell behind the proxy).
	streamLost atomic.Uint64
	started    time.Time
}

// New returns a view configured by cfg.
func New(cfg Config) *Server {
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Source == "" {
		cfg.Source = "live"
	}
	cfg.Streams = cfg.Streams.withDefaults()
	s := &Server{cfg: cfg, hist: newHistory(cfg.History), started: time.Now()}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	return s
}

// Feed applies a proxy's record stream until the channel is closed or ctx
// is done. The stream's own losses are counted and shown.
func (s *Server) Feed(ctx context.Context, events <-chan inspect.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Dropped > s.streamLost.Load() {
				s.metrics.streamDropped(ev.Dropped - s.streamLost.Swap(ev.Dropped))
			}
			s.apply(ev)
		}
	}
}

// Add adds finished records, as read from saved files.
func (s *Server) Add(recs ...*inspect.ConnRecord) {
	for _, r := range recs {
		s.apply(inspect.Event{Kind: inspect.EventClose, Record: r})
	}
}

func (s *Server) apply(ev inspect.Event) {
	// As the proxy publishes it: its free text within its caps, its
	// durations at microseconds. A record of another reader (Add) may be
	// neither.
	ev.Record = ev.Record.Capped()
	e, id, closedOpen := s.hist.apply(ev)
	s.metrics.observe(ev, closedOpen)
	if s.subs.count() > 0 {
		snap := *e // the entry as this event left it
		s.subs.publish(ev.Kind, id, e.seq, func(rows bool) any {
			if rows {
				return newRow(&snap, ev.Record, s.hist.seqOf)
			}
			return ev.Record // as published: readers never change it
		})
	}
}

// Handler is the view's HTTP handler, with its Host, token and origin
// checks.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the view on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() {
		s.subs.closeAll()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
