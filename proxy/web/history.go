package web

import (
	"sync"

	"github.com/tlsresume/tlsresume/inspect"
)

// entry is one connection in the history: its record as it stands (the
// open event's snapshot, then the final record) and the ids of the events
// that made it so.
type entry struct {
	seq     uint64 // position in the history: 1, 2, … (the records API's cursor)
	rec     *inspect.ConnRecord
	closed  bool
	eventID uint64 // the last event about this connection (SSE id)
}

// history keeps the newest records, at most max, in the order their
// connections opened, and the event ids a reconnecting browser resumes
// from. It is safe for concurrent use.
type history struct {
	mu      sync.RWMutex
	max     int
	ring    []*entry // oldest first once full: ring[head] is the oldest
	head    int
	byID    map[string]*entry // the newest entry with each connection id
	seq     uint64            // entries ever added
	eventID uint64            // events ever applied
	evicted uint64            // entries pushed out by max
}

func newHistory(max int) *history {
	return &history{max: max, byID: map[string]*entry{}}
}

// apply records an event and returns the entry it changed, the event's
// id, and whether the event closed a connection the history had open. A
// close without an open (the open was lost, or a saved log is loaded) adds
// the connection as closed.
func (h *history) apply(ev inspect.Event) (e *entry, id uint64, closedOpen bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eventID++
	id = h.eventID
	e = h.byID[ev.Record.ID]
	closedOpen = ev.Kind == inspect.EventClose && e != nil && !e.closed
	if ev.Kind == inspect.EventOpen || e == nil || e.closed {
		e = h.add(ev.Record)
	}
	e.rec, e.closed, e.eventID = ev.Record, ev.Kind == inspect.EventClose, id
	return e, id, closedOpen
}

// add appends a new entry, evicting the oldest when full. h.mu is held.
func (h *history) add(r *inspect.ConnRecord) *entry {
	h.seq++
	e := &entry{seq: h.seq, rec: r}
	if len(h.ring) < h.max {
		h.ring = append(h.ring, e)
	} else {
		old := h.ring[h.head]
		if h.byID[old.rec.ID] == old {
			delete(h.byID, old.rec.ID)
		}
		h.ring[h.head] = e
		h.head = (h.head + 1) % h.max
		h.evicted++
	}
	h.byID[r.ID] = e
	return e
}

// view is a consistent copy of what the history holds: entries in order,
// with their records (read-only, shared) and states.
type view struct {
	entries []entry
	lastID  uint64 // the newest event applied
	evicted uint64
	total   uint64 // entries ever added
}

// snapshot copies the entries after seq (all with 0), in order.
func (h *history) snapshot(after uint64) view {
	h.mu.RLock()
	defer h.mu.RUnlock()
	v := view{lastID: h.eventID, evicted: h.evicted, total: h.seq}
	n := len(h.ring)
	for i := range n {
		e := h.ring[(h.head+i)%n]
		if e.seq > after {
			v.entries = append(v.entries, *e)
		}
	}
	return v
}

// since returns the entries whose last event is newer than id, in order:
// what a browser that saw events up to id must be sent again.
func (h *history) since(id uint64) []entry {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []entry
	n := len(h.ring)
	for i := range n {
		if e := h.ring[(h.head+i)%n]; e.eventID > id {
			out = append(out, *e)
		}
	}
	return out
}

// seqOf is the position of the newest connection with id that came before
// the one at seq, or 0 when the history no longer has it.
func (h *history) seqOf(id string, before uint64) uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if e := h.byID[id]; e != nil && e.seq < before {
		return e.seq
	}
	return 0
}

// get returns the entry at seq, if the history still has it.
func (h *history) get(seq uint64) (entry, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := len(h.ring)
	if n == 0 {
		return entry{}, false
	}
	oldest := h.ring[h.head].seq
	if seq < oldest || seq-oldest >= uint64(n) {
		return entry{}, false
	}
	return *h.ring[(h.head+int(seq-oldest))%n], true
}
