package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
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
	// replayPart is how many connections a replay reads from the history
	// at a time.
	replayPart = 256
)

// handleEvents serves GET /api/events: Server-Sent Events "open" and
// "close", whose data is the record, with ids. A reader that reconnects
// sends Last-Event-ID (or ?last_event_id=) and first gets, for every
// connection changed since, its latest event again, in the order of those
// events: at most StreamLimits.Replay bytes, then an event "more" ends the
// response and the reader reconnects for the rest. A reader that falls
// behind by more than StreamLimits.Buffer, or does not take a write within
// StreamLimits.WriteTimeout, is dropped: it reconnects with its
// Last-Event-ID and is sent what it missed. At most StreamLimits.Max
// streams are open; one more is refused with 503.
//
// ?format=rows is the page's own stream: "rows" events, each an array of
// the page's rows (see row) that changed since the last, at most every
// rowsEvery.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rows := r.URL.Query().Get("format") == "rows"
	after, resume := lastEventID(r)
	// Subscribe before reading how far the replay goes, so nothing falls
	// between the two; an event in both is sent twice, which readers
	// absorb (the same id, the same state).
	sub := s.subs.add(rows, s.cfg.Streams.Max, s.cfg.Streams.Buffer)
	if sub == nil {
		s.metrics.refuse("streams_at_cap")
		w.Header().Set("Retry-After", "10")
		httpError(w, fmt.Sprintf("too many event streams: %d are open, the most this view serves; close one (another tab?) and retry, or page through /api/records", s.cfg.Streams.Max), http.StatusServiceUnavailable)
		return
	}
	defer s.subs.remove(sub)
	upTo := s.hist.lastEvent()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st := &eventWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.Streams.WriteTimeout, rows: rows}
	if resume {
		more, err := s.replay(st, after, upTo)
		if err != nil || more {
			s.streamEnded(r, err)
			return
		}
	}
	// An id with no data: a reader dropped before any event came resumes
	// from here (EventSource keeps the id; it dispatches no event).
	st.buf = fmt.Appendf(st.buf, ": tlsresume live view\nid: %d\n\n", upTo)
	s.streamEnded(r, s.follow(r, sub, st))
}

// lastEventID is the id a reconnecting reader saw last: Last-Event-ID, as
// EventSource sends it, or ?last_event_id=.
func lastEventID(r *http.Request) (uint64, bool) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last_event_id")
	}
	id, err := strconv.ParseUint(last, 10, 64)
	return id, err == nil
}

// errBehind: the reader fell behind by more than its buffer.
var errBehind = errors.New("web: event reader fell behind")

// follow writes sub's events until the reader goes, falls behind, or the
// view shuts down.
func (s *Server) follow(r *http.Request, sub *eventSub, st *eventWriter) error {
	if err := st.flush(); err != nil {
		return err
	}
	keep := time.NewTicker(keepAlive)
	defer keep.Stop()
	var tick <-chan time.Time
	if st.rows {
		t := time.NewTicker(rowsEvery)
		defer t.Stop()
		tick = t.C
	}
	var msgs []sseMsg
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-sub.ready:
			var behind, ended bool
			msgs, behind, ended = sub.take(msgs[:0], writeChunk)
			if behind {
				return errBehind
			}
			if ended {
				return nil
			}
			for _, m := range msgs {
				if err := st.add(m); err != nil {
					return err
				}
			}
			clear(msgs)
			if sub.pending() { // the rest after a look at the other cases
				sub.signal()
			}
			if !st.rows {
				if err := st.flush(); err != nil {
					return err
				}
			}
		case <-tick:
			if err := st.flush(); err != nil {
				return err
			}
		case <-keep.C:
			st.buf = append(st.buf, ": keep-alive\n\n"...)
			if err := st.flush(); err != nil {
				return err
			}
		}
	}
}

// streamEnded counts a reader dropped for being slow.
func (s *Server) streamEnded(r *http.Request, err error) {
	reason := ""
	switch {
	case errors.Is(err, errBehind):
		reason = "behind"
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = "write_timeout"
	default:
		return
	}
	s.metrics.dropStream(reason)
	s.cfg.Log.Debug().Str("client", r.RemoteAddr).Str("reason", reason).Msg("drop slow event reader")
}

// replay writes what a reconnecting reader missed: every connection whose
// latest event is after id after and at most upTo, by that event, in the
// order of those events, a part at a time. Past StreamLimits.Replay bytes
// it writes an event "more" instead of the rest, and says so.
func (s *Server) replay(st *eventWriter, after, upTo uint64) (more bool, err error) {
	for {
		part := s.hist.since(after, upTo, replayPart)
		for i := range part {
			e := &part[i]
			err := s.hist.recordInto(e, &st.rec)
			switch {
			case err != nil:
			case st.rows:
				err = st.add(s.entryMsg(e, &st.rec))
			default:
				err = st.addRecord(e, &st.rec)
			}
			if err != nil {
				return false, err
			}
			after = e.eventID
		}
		if err := st.flush(); err != nil {
			return false, err
		}
		if len(part) < replayPart || after >= upTo {
			return false, nil
		}
		if st.sent >= int64(s.cfg.Streams.Replay) {
			st.buf = fmt.Appendf(st.buf, "event: more\ndata: %d\n\n", after)
			return true, st.flush()
		}
	}
}

// entryMsg is an entry, whose record is r, as its latest event, for the
// page's rows.
func (s *Server) entryMsg(e *entry, r *inspect.ConnRecord) sseMsg {
	data, _ := json.Marshal(newRow(e, r, s.hist.seqOf))
	return sseMsg{kind: entryKind(e), id: e.eventID, seq: e.seq, data: data}
}

func entryKind(e *entry) inspect.EventKind {
	if e.closed {
		return inspect.EventClose
	}
	return inspect.EventOpen
}

// eventWriter gathers a stream's events and writes them, at most about
// writeChunk at a time, each write with a deadline: each event as it
// comes, or, for the page's rows, the latest row of each connection at
// each flush.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	rows    bool
	sent    int64 // bytes written

	buf        []byte
	batch      [][]byte       // rows, in the order their connections first changed
	batchBytes int            // what batch holds
	bySeq      map[uint64]int // a connection's place in batch
	lastID     uint64         // the newest event in batch
	enc        *json.Encoder  // writes records straight into buf
	// rec is where a replay unpacks each record in turn.
	rec inspect.ConnRecord
}

// addRecord gathers an entry's latest event with its record r, encoded
// straight into the buffer: a replay makes little garbage per record.
func (e *eventWriter) addRecord(en *entry, r *inspect.ConnRecord) error {
	if e.enc == nil {
		e.enc = json.NewEncoder(appender{&e.buf})
	}
	e.buf = append(e.buf, "event: "...)
	e.buf = append(e.buf, entryKind(en)...)
	e.buf = append(e.buf, "\nid: "...)
	e.buf = strconv.AppendUint(e.buf, en.eventID, 10)
	e.buf = append(e.buf, "\ndata: "...)
	if err := e.enc.Encode(r); err != nil { // its own line, as json.Marshal and a newline
		return fmt.Errorf("web: encoding record %s: %w", r.ID, err)
	}
	e.buf = append(e.buf, '\n')
	if len(e.buf) >= writeChunk {
		return e.flush()
	}
	return nil
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) {
	*a.b = append(*a.b, p...)
	return len(p), nil
}

// add gathers one event, writing what was gathered once it reaches
// writeChunk.
func (e *eventWriter) add(m sseMsg) error {
	if !e.rows {
		e.buf = appendEvent(e.buf, string(m.kind), m.id, m.data)
		if len(e.buf) >= writeChunk {
			return e.flush()
		}
		return nil
	}
	if e.bySeq == nil {
		e.bySeq = map[uint64]int{}
	}
	if i, ok := e.bySeq[m.seq]; ok {
		e.batchBytes += len(m.data) - len(e.batch[i])
		e.batch[i] = m.data
	} else {
		e.bySeq[m.seq] = len(e.batch)
		e.batch = append(e.batch, m.data)
		e.batchBytes += len(m.data)
	}
	e.lastID = max(e.lastID, m.id)
	if e.batchBytes >= writeChunk {
		return e.flush()
	}
	return nil
}

// flush writes what was gathered, within the write timeout.
func (e *eventWriter) flush() error {
	if len(e.batch) > 0 {
		data := make([]byte, 0, e.batchBytes+len(e.batch)+1)
		data = append(data, '[')
		for i, b := range e.batch {
			if i > 0 {
				data = append(data, ',')
			}
			data = append(data, b...)
		}
		data = append(data, ']')
		e.buf = appendEvent(e.buf, "rows", e.lastID, data)
		clear(e.batch)
		e.batch, e.batchBytes = e.batch[:0], 0
		clear(e.bySeq)
	}
	if len(e.buf) == 0 {
		return nil
	}
	if err := e.rc.SetWriteDeadline(time.Now().Add(e.timeout)); err != nil {
		return fmt.Errorf("web: setting an event stream's write deadline: %w", err)
	}
	n, err := e.w.Write(e.buf)
	e.sent += int64(n)
	if err == nil {
		err = e.rc.Flush()
	}
	e.buf = e.buf[:0]
	if cap(e.buf) > 2*writeChunk { // one large event: do not keep its buffer
		e.buf = nil
	}
	return err
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
