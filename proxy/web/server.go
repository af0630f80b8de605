package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
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
	compact *compactor // shares what records repeat, before the history keeps them
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
	s := &Server{cfg: cfg, hist: newHistory(cfg.History), compact: newCompactor(), started: time.Now()}
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
	ev.Record = s.compact.record(ev.Record)
	e, id, closedOpen := s.hist.apply(ev)
	s.metrics.observe(ev, closedOpen)
	if s.subs.count() > 0 {
		snap := *e // the entry as this event left it
		s.subs.publish(ev.Kind, id, e.seq, func(rows bool) any {
			if rows {
				return newRow(&snap, s.hist.seqOf)
			}
			return ev.Record
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

// subscribers are the browsers following /api/events. Each has a buffer;
// one that falls behind loses events and is told so, and never slows the
// view or the proxy.
type subscribers struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
	n    atomic.Int32
}

type eventSub struct {
	rows    bool // the page's rows rather than records
	ch      chan sseMsg
	dropped atomic.Uint64
}

// sseMsg is one event for a subscriber: its data already encoded, once for
// every subscriber that wants it.
type sseMsg struct {
	kind inspect.EventKind
	id   uint64 // the event's id
	seq  uint64 // the connection's row
	data []byte // JSON: the record, or the row
}

func (ss *subscribers) add(rows bool) *eventSub {
	sub := &eventSub{rows: rows, ch: make(chan sseMsg, 4096)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.subs == nil {
		ss.subs = map[*eventSub]struct{}{}
	}
	ss.subs[sub] = struct{}{}
	ss.n.Add(1)
	return sub
}

func (ss *subscribers) remove(sub *eventSub) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.subs[sub]; ok {
		delete(ss.subs, sub)
		close(sub.ch)
		ss.n.Add(-1)
	}
}

func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for sub := range ss.subs {
		delete(ss.subs, sub)
		close(sub.ch)
	}
	ss.n.Store(0)
}

func (ss *subscribers) count() int { return int(ss.n.Load()) }

// publish sends one event to every subscriber that has room for it; data
// gives what to send, a record or a row, each encoded once.
func (ss *subscribers) publish(kind inspect.EventKind, id, seq uint64, data func(rows bool) any) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var msgs [2][]byte
	for sub := range ss.subs {
		i := 0
		if sub.rows {
			i = 1
		}
		if msgs[i] == nil {
			msgs[i], _ = json.Marshal(data(sub.rows))
		}
		select {
		case sub.ch <- sseMsg{kind: kind, id: id, seq: seq, data: msgs[i]}:
		default:
			sub.dropped.Add(1)
		}
	}
}

// appendEvent appends one Server-Sent Event: its name, its id, and its
// data (JSON, one line).
func appendEvent(b []byte, name string, id uint64, data []byte) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
