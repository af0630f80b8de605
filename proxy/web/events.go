package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

const (
	// keepAlive is how often an idle event stream sends a comment, so that
	// proxies and browsers keep it open.
	keepAlive = 15 * time.Second
	// rowsEvery is how often the page's stream sends what changed: one
	// "rows" event with the latest row of each connection that changed,
	// however many events there were. A page under a load benchmark then
	// parses two messages a second, not thousands.
	rowsEvery = 500 * time.Millisecond
)

// handleEvents serves GET /api/events: Server-Sent Events "open" and
// "close", whose data is the record, with ids. A reader that reconnects
// sends Last-Event-ID (or ?last_event_id=) and first gets, for every
// connection changed since, its latest event again. A reader that falls
// behind gets a "dropped" event with the count it lost, and should fetch
// the records again.
//
// ?format=rows is the page's own stream: "rows" events, each an array of
// the page's rows (see row) that changed since the last, at most every
// rowsEvery.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	rows := r.URL.Query().Get("format") == "rows"
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Subscribe before replaying, so nothing falls between the two; an
	// event in both is sent twice, which readers absorb (the same id, the
	// same state).
	sub := s.subs.add(rows)
	defer s.subs.remove(sub)
	out := s.replay(r, rows)
	out = append(out, ": tlsresume live view\n\n"...)
	if _, err := w.Write(out); err != nil {
		return
	}
	fl.Flush()
	st := &eventWriter{w: w, fl: fl, sub: sub, rows: rows}
	keep := time.NewTicker(keepAlive)
	defer keep.Stop()
	var tick <-chan time.Time
	if rows {
		t := time.NewTicker(rowsEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-sub.ch:
			if !ok {
				return
			}
			st.add(msg)
			if rows {
				continue
			}
			for n := len(sub.ch); n > 0; n-- { // what queued up, in one write
				if m, ok := <-sub.ch; ok {
					st.add(m)
				}
			}
			if st.flush() != nil {
				return
			}
		case <-tick:
			if st.flush() != nil {
				return
			}
		case <-keep.C:
			if _, err := fmt.Fprintf(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// replay is what a reconnecting reader missed: every connection changed
// after its Last-Event-ID, by its latest event.
func (s *Server) replay(r *http.Request, rows bool) []byte {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	id, err := strconv.ParseUint(last, 10, 64)
	if last == "" || err != nil {
		return nil
	}
	var out []byte
	var batch []row
	var lastID uint64
	for _, e := range s.hist.since(id) {
		if rows {
			batch = append(batch, newRow(&e, s.hist.seqOf))
			lastID = max(lastID, e.eventID)
			continue
		}
		kind := inspect.EventOpen
		if e.closed {
			kind = inspect.EventClose
		}
		data, _ := json.Marshal(e.rec)
		out = appendEvent(out, string(kind), e.eventID, data)
	}
	if len(batch) > 0 {
		data, _ := json.Marshal(batch)
		out = appendEvent(out, "rows", lastID, data)
	}
	return out
}

// eventWriter gathers a subscriber's events and writes them: each as it
// comes, or, for the page's rows, the latest row of each connection at
// each flush.
type eventWriter struct {
	w    http.ResponseWriter
	fl   http.Flusher
	sub  *eventSub
	rows bool
	told uint64 // drops already reported

	buf    []byte
	batch  [][]byte       // rows, in the order their connections first changed
	bySeq  map[uint64]int // a connection's place in batch
	lastID uint64         // the newest event in batch
}

func (e *eventWriter) add(m sseMsg) {
	if !e.rows {
		e.buf = appendEvent(e.buf, string(m.kind), m.id, m.data)
		return
	}
	if e.bySeq == nil {
		e.bySeq = map[uint64]int{}
	}
	if i, ok := e.bySeq[m.seq]; ok {
		e.batch[i] = m.data
	} else {
		e.bySeq[m.seq] = len(e.batch)
		e.batch = append(e.batch, m.data)
	}
	e.lastID = max(e.lastID, m.id)
}

// flush writes what was gathered, with a "dropped" event first when the
// subscriber lost events since the last one.
func (e *eventWriter) flush() error {
	if d := e.sub.dropped.Load(); d > e.told {
		e.buf = fmt.Appendf(e.buf, "event: dropped\ndata: %d\n\n", d)
		e.told = d
	}
	if len(e.batch) > 0 {
		data := []byte{'['}
		for i, b := range e.batch {
			if i > 0 {
				data = append(data, ',')
			}
			data = append(data, b...)
		}
		data = append(data, ']')
		e.buf = appendEvent(e.buf, "rows", e.lastID, data)
		e.batch = e.batch[:0]
		clear(e.bySeq)
	}
	if len(e.buf) == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	e.fl.Flush()
	return err
}
