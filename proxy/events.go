package proxy

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tlsresume/tlsresume/inspect"
)

// DefaultSubscribeBuffer is the events a subscriber may fall behind by
// before it loses any, when Subscribe is given no size.
const DefaultSubscribeBuffer = 1024

// hub hands every record event (a connection's open and close) to any
// number of subscribers. Publishing never blocks: a subscriber whose
// buffer is full loses the event, and the next event it receives says how
// many it lost in all.
type hub struct {
	mu     sync.RWMutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch      chan inspect.Event
	dropped atomic.Uint64
	stop    func() bool // stops the context.AfterFunc that unsubscribes
}

// Subscribe returns a channel of the proxy's record stream: an open event
// when a connection's hello was read (or could not be), a close event with
// its final record. Every close follows its connection's open. buffer is
// how many events the subscriber may fall behind by before it loses some
// (0 means DefaultSubscribeBuffer); a subscriber never slows a connection.
// The channel is closed when ctx is done, or after Shutdown has published
// the last record.
func (s *Server) Subscribe(ctx context.Context, buffer int) <-chan inspect.Event {
	if buffer <= 0 {
		buffer = DefaultSubscribeBuffer
	}
	return s.events.subscribe(ctx, buffer)
}

func (st *hub) subscribe(ctx context.Context, buffer int) <-chan inspect.Event {
	sub := &subscriber{ch: make(chan inspect.Event, buffer)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		close(sub.ch)
		return sub.ch
	}
	if st.subs == nil {
		st.subs = map[*subscriber]struct{}{}
	}
	st.subs[sub] = struct{}{}
	sub.stop = context.AfterFunc(ctx, func() { st.unsubscribe(sub) })
	return sub.ch
}

func (st *hub) unsubscribe(sub *subscriber) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.subs[sub]; ok {
		delete(st.subs, sub)
		close(sub.ch)
	}
}

// publish hands r to every subscriber that has room for it.
func (st *hub) publish(kind inspect.EventKind, r *inspect.ConnRecord) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	for sub := range st.subs {
		select {
		case sub.ch <- inspect.Event{Kind: kind, Record: r, Dropped: sub.dropped.Load()}:
		default:
			sub.dropped.Add(1)
		}
	}
}

// dropped is the events lost by all current subscribers.
func (st *hub) dropped() uint64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	var n uint64
	for sub := range st.subs {
		n += sub.dropped.Load()
	}
	return n
}

// close ends every subscription: no event follows.
func (st *hub) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	for sub := range st.subs {
		sub.stop()
		delete(st.subs, sub)
		close(sub.ch)
	}
}
