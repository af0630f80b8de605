package web

import (
	"cmp"
	"slices"
	"sync"

	"github.com/tlsresume/tlsresume/inspect"
)

// entry is one connection in the history: its record as it stands (the
// open event's snapshot, then the final record), packed (pack.go), and the
// ids of the events that made it so.
type entry struct {
	seq     uint64 // position in the history: 1, 2, … (the records API's cursor)
	packed  string // the record; history.record unpacks it
	eventID uint64 // the last event about this connection (SSE id)
	closed  bool
	slot    int32 // its place in history.order; -1 before it has one
}

// history keeps the newest records, at most max, in the order their
// connections opened, and the event ids a reconnecting browser resumes
// from. It is safe for concurrent use.
type history struct {
	pk      *packer // packs records in, unpacks them out; its own lock
	mu      sync.RWMutex
	max     int
	ring    []*entry // oldest first once full: ring[head] is the oldest
	head    int
	byID    map[string]*entry // the newest entry with each connection id (keys share the packed records' bytes)
	seq     uint64            // entries ever added
	eventID uint64            // events ever applied
	evicted uint64            // entries pushed out by max
	// order is the entries by their last event, oldest first, so that a
	// replay can go in event order and resume from any event id: apply
	// moves an entry to the end. The slot an entry left keeps its id (the
	// ids stay sorted for a binary search) and a nil entry, until compact.
	order []orderSlot
}

type orderSlot struct {
	id uint64 // the entry's eventID when it took the slot
	e  *entry // nil once the entry moved on or left the history
}

func newHistory(max int) *history {
	return &history{pk: newPacker(), max: max, byID: map[string]*entry{}}
}

// record returns e's record, unpacked: a new one, the caller's to keep
// (its lists are shared: never change them).
func (h *history) record(e *entry) (*inspect.ConnRecord, error) { return h.pk.unpack(e.packed) }

// recordInto unpacks e's record into r, reusing what r points to: for a
// reader that goes through many records and keeps none.
func (h *history) recordInto(e *entry, r *inspect.ConnRecord) error {
	return h.pk.unpackInto(e.packed, r)
}

// apply records an event and returns the entry it changed, the event's
// id, and whether the event closed a connection the history had open. A
// close without an open (the open was lost, or a saved log is loaded) adds
// the connection as closed.
func (h *history) apply(ev inspect.Event) (e *entry, id uint64, closedOpen bool) {
	packed := h.pk.pack(ev.Record)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eventID++
	id = h.eventID
	e = h.byID[ev.Record.ID]
	closedOpen = ev.Kind == inspect.EventClose && e != nil && !e.closed
	if ev.Kind == inspect.EventOpen || e == nil || e.closed {
		e = h.add()
	}
	e.packed, e.closed, e.eventID = packed, ev.Kind == inspect.EventClose, id
	// A new key, or the same one from the new packed record: assigning an
	// equal string key replaces it, so the old record is not kept alive.
	h.byID[keyOf(packed)] = e
	h.reorder(e)
	return e, id, closedOpen
}

// reorder moves e to the end of h.order, its new event the newest. h.mu
// is held.
func (h *history) reorder(e *entry) {
	if e.slot >= 0 {
		h.order[e.slot].e = nil
	}
	if len(h.order) >= 2*len(h.ring)+1024 {
		h.compact()
	}
	e.slot = int32(len(h.order))
	h.order = append(h.order, orderSlot{id: e.eventID, e: e})
}

// compact drops the empty slots of h.order. At most every len(ring)+1024
// events: amortized, a copy of a few slots per event. h.mu is held.
func (h *history) compact() {
	n := 0
	for _, o := range h.order {
		if o.e != nil {
			o.e.slot = int32(n)
			h.order[n] = o
			n++
		}
	}
	clear(h.order[n:])
	h.order = h.order[:n]
}

// add appends a new entry, evicting the oldest when full; apply indexes
// it. h.mu is held.
func (h *history) add() *entry {
	h.seq++
	e := &entry{seq: h.seq, slot: -1}
	if len(h.ring) < h.max {
		h.ring = append(h.ring, e)
	} else {
		old := h.ring[h.head]
		if id := keyOf(old.packed); h.byID[id] == old {
			delete(h.byID, id)
		}
		h.order[old.slot].e = nil
		h.ring[h.head] = e
		h.head = (h.head + 1) % h.max
		h.evicted++
	}
	return e
}

// view is a consistent copy of what the history holds: entries in order,
// with their packed records and states.
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

// since returns up to n entries whose last event is after id and at most
// upTo, in the order of those events: what a reader that saw events up to
// id must be sent again, a part at a time. The next part starts after the
// last one's eventID.
func (h *history) since(id, upTo uint64, n int) []entry {
	if id >= upTo {
		return nil
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(h.order, id+1, func(o orderSlot, id uint64) int { return cmp.Compare(o.id, id) })
	var out []entry
	for ; i < len(h.order) && len(out) < n; i++ {
		o := h.order[i]
		if o.id > upTo {
			break
		}
		if o.e != nil {
			out = append(out, *o.e)
		}
	}
	return out
}

// lastEvent is the id of the newest event applied.
func (h *history) lastEvent() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.eventID
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
