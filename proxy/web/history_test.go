package web

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestHistorySince: a replay reads the history in the order of each
// connection's latest event, a part at a time, from any event id, through
// connections that close out of order, open again under the same id, and
// are pushed out; and the index it reads stays within its bound.
func TestHistorySince(t *testing.T) {
	const max = 100
	h := newHistory(max)
	rec := func(id string) *inspect.ConnRecord { return &inspect.ConnRecord{ID: id} }
	latest := map[uint64]uint64{} // entry (seq) → the id of its latest event
	apply := func(kind inspect.EventKind, id string) {
		e, ev, _ := h.apply(inspect.Event{Kind: kind, Record: rec(id)})
		latest[e.seq] = ev
	}
	for i := range 5000 {
		id := fmt.Sprintf("c%d", i%700) // ids come back: a new entry each time
		apply(inspect.EventOpen, id)
		if i%3 == 0 { // close some of the open ones, out of order
			apply(inspect.EventClose, fmt.Sprintf("c%d", (i+350)%700))
		}
		if len(h.order) > 2*max+1024 {
			t.Fatalf("after %d connections the index holds %d slots for %d entries", i+1, len(h.order), len(h.ring))
		}
	}
	for _, after := range []uint64{0, 6000, h.eventID - 10} {
		var got []uint64
		for cur := after; ; {
			part := h.since(cur, h.eventID, 7)
			for _, e := range part {
				if latest[e.seq] != e.eventID {
					t.Fatalf("since(%d): entry %d with event %d, not its latest %d", cur, e.seq, e.eventID, latest[e.seq])
				}
				got = append(got, e.eventID)
				cur = e.eventID
			}
			if len(part) < 7 {
				break
			}
		}
		var want []uint64
		for _, e := range h.ring {
			if latest[e.seq] > after {
				want = append(want, latest[e.seq])
			}
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("replay after %d: %d events, want %d in order", after, len(got), len(want))
		}
	}
	if got := h.since(h.eventID, h.eventID, 10); len(got) != 0 {
		t.Errorf("since the newest event: %d entries", len(got))
	}
	if got := h.since(^uint64(0), h.eventID, 10); len(got) != 0 {
		t.Errorf("since an id from the future: %d entries", len(got))
	}
}
