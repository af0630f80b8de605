package web

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// The event streams' limits when StreamLimits leaves them zero. Together
// they bound what the streams hold: at most DefaultMaxStreams ×
// (DefaultStreamBuffer + writeChunk), and in practice much less, since
// every stream shares the encoded events it has not yet sent.
const (
	// DefaultMaxStreams is how many event streams may be open at once: a
	// page takes one per tab.
	DefaultMaxStreams = 64
	// DefaultStreamBuffer is how many bytes of events a stream may fall
	// behind by: at about 2.5 kB a record, some 400 records, more than a
	// second of a busy proxy.
	DefaultStreamBuffer = 1 << 20
	// DefaultReplayBytes is the most one response replays; a reader that
	// missed more gets the rest by reconnecting.
	DefaultReplayBytes = 16 << 20
	// DefaultWriteTimeout is the longest one write to a stream may wait
	// for its reader.
	DefaultWriteTimeout = 10 * time.Second
)

// writeChunk is the most a stream gathers before it writes: the memory one
// stream holds besides its buffer.
const writeChunk = 64 << 10

// StreamLimits bound the event streams (/api/events), so that readers,
// slow or hostile, cost the view a bounded amount of memory. The zero
// value of each field means its default.
type StreamLimits struct {
	// Max is how many streams may be open at once; one more is refused
	// with 503. Default DefaultMaxStreams.
	Max int
	// Buffer is how many bytes of events a stream may fall behind by
	// before it is closed; its reader reconnects with Last-Event-ID and
	// gets what it missed. Default DefaultStreamBuffer.
	Buffer int
	// Replay is the most bytes one response replays; past it the response
	// ends with an event "more", and the reader reconnects with
	// Last-Event-ID for the rest. Default DefaultReplayBytes.
	Replay int
	// WriteTimeout is the longest one write to a stream may take; a reader
	// that does not take it in time is dropped. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
}

func (l StreamLimits) withDefaults() StreamLimits {
	if l.Max <= 0 {
		l.Max = DefaultMaxStreams
	}
	if l.Buffer <= 0 {
		l.Buffer = DefaultStreamBuffer
	}
	if l.Replay <= 0 {
		l.Replay = DefaultReplayBytes
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = DefaultWriteTimeout
	}
	return l
}

// subscribers are the readers following /api/events. Each has a queue of
// at most StreamLimits.Buffer bytes; one that falls behind is dropped
// (and reconnects), and never slows the view or the proxy.
type subscribers struct {
	mu   sync.Mutex
	subs map[*eventSub]struct{}
	n    atomic.Int32
}

// eventSub is one reader's queue of events not yet written.
type eventSub struct {
	rows  bool          // the page's rows rather than records
	limit int           // the most bytes queued
	ready chan struct{} // signalled when something was queued, or the sub ended

	mu     sync.Mutex
	queue  []sseMsg // queue[head:] is waiting
	head   int
	bytes  int  // what queue[head:] holds, as counted by msgBytes
	behind bool // it overflowed: the reader is dropped
	ended  bool // the view is shutting down
}

// sseMsg is one event for a subscriber: its data already encoded, once for
// every subscriber that wants it.
type sseMsg struct {
	kind inspect.EventKind
	id   uint64 // the event's id
	seq  uint64 // the connection's row
	data []byte // JSON: the record, or the row
}

// msgBytes is what a queued event counts against a stream's buffer: its
// data and the event's name and id.
func msgBytes(m sseMsg) int { return len(m.data) + 64 }

// add subscribes a reader, or returns nil when max are subscribed.
func (ss *subscribers) add(rows bool, max, limit int) *eventSub {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.subs) >= max {
		return nil
	}
	if ss.subs == nil {
		ss.subs = map[*eventSub]struct{}{}
	}
	sub := &eventSub{rows: rows, limit: limit, ready: make(chan struct{}, 1)}
	ss.subs[sub] = struct{}{}
	ss.n.Add(1)
	return sub
}

func (ss *subscribers) remove(sub *eventSub) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.subs[sub]; ok {
		delete(ss.subs, sub)
		ss.n.Add(-1)
	}
}

// closeAll ends every subscription.
func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for sub := range ss.subs {
		sub.mu.Lock()
		sub.ended = true
		sub.mu.Unlock()
		sub.signal()
	}
}

func (ss *subscribers) count() int { return int(ss.n.Load()) }

// publish queues one event for every subscriber; data gives what to send,
// a record or a row, each encoded once.
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
		sub.push(sseMsg{kind: kind, id: id, seq: seq, data: msgs[i]})
	}
}

// push queues m, or, when that would pass the sub's limit, marks it behind
// and lets go of its queue.
func (sub *eventSub) push(m sseMsg) {
	sub.mu.Lock()
	switch {
	case sub.behind || sub.ended:
	case sub.bytes+msgBytes(m) > sub.limit:
		sub.behind = true
		sub.queue, sub.head, sub.bytes = nil, 0, 0
	default:
		if sub.head > 0 && sub.head >= len(sub.queue)/2 { // reuse the front
			n := copy(sub.queue, sub.queue[sub.head:])
			clear(sub.queue[n:])
			sub.queue, sub.head = sub.queue[:n], 0
		}
		sub.queue = append(sub.queue, m)
		sub.bytes += msgBytes(m)
	}
	sub.mu.Unlock()
	sub.signal()
}

func (sub *eventSub) signal() {
	select {
	case sub.ready <- struct{}{}:
	default:
	}
}

// take appends to out the queued events, up to about max bytes, and says
// whether the sub is over: it fell behind, or the view is shutting down.
func (sub *eventSub) take(out []sseMsg, max int) (_ []sseMsg, behind, ended bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for n := 0; sub.head < len(sub.queue) && n < max; sub.head++ {
		m := sub.queue[sub.head]
		sub.queue[sub.head] = sseMsg{}
		out = append(out, m)
		n += msgBytes(m)
		sub.bytes -= msgBytes(m)
	}
	if sub.head == len(sub.queue) {
		sub.queue, sub.head = sub.queue[:0], 0
	}
	return out, sub.behind, sub.ended
}

// pending reports whether events are queued.
func (sub *eventSub) pending() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.head < len(sub.queue)
}
