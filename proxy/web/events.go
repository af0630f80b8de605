package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// keepAlive is how often an idle event stream sends a comment, so that
// proxies and browsers keep it open.
const keepAlive = 15 * time.Second

// handleEvents serves GET /api/events: Server-Sent Events "open" and
// "close", whose data is the record (with ?format=rows, the page's row),
// with ids. A browser that reconnects sends Last-Event-ID (or
// ?last_event_id=) and first gets, for every connection changed since, its
// latest event again. A client that falls behind gets a "dropped" event
// with the count it lost, and should fetch /api/rows again.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		httpError(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	rows := r.URL.Query().Get("format") == "rows"
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Subscribe before replaying, so nothing falls between the two; an
	// event in both is sent twice, which the page's rows absorb.
	sub := s.subs.add(rows)
	defer s.subs.remove(sub)
	if last != "" {
		if id, err := strconv.ParseUint(last, 10, 64); err == nil {
			for _, e := range s.hist.since(id) {
				kind := inspect.EventOpen
				if e.closed {
					kind = inspect.EventClose
				}
				var data any = e.rec
				if rows {
					data = newRow(&e, s.hist.seqOf)
				}
				w.Write(encodeEvent(kind, e.eventID, data))
			}
		}
	}
	fmt.Fprintf(w, ": tlsresume live view\n\n")
	fl.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var told uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, ok := <-sub.ch:
			if !ok {
				return
			}
			if d := sub.dropped.Load(); d > told {
				fmt.Fprintf(w, "event: dropped\ndata: %d\n\n", d)
				told = d
			}
			if _, err := w.Write(msg); err != nil {
				return
			}
			// Write what has queued up in one flush.
			for n := len(sub.ch); n > 0; n-- {
				if _, err := w.Write(<-sub.ch); err != nil {
					return
				}
			}
			fl.Flush()
		case <-tick.C:
			if _, err := fmt.Fprintf(w, ": keep-alive\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
