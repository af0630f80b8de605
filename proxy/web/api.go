package web

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/guard"
)

// The records API's page sizes.
const (
	defaultLimit = 1000
	maxLimit     = 10_000
)

// page is the answer of /api/records and /api/rows: the records (or rows)
// after the cursor since, in the order their connections opened, and the
// cursor to ask with next.
type page[T any] struct {
	Records   []T    `json:"records"`
	Next      uint64 `json:"next"`       // pass as since= to get what follows
	Total     uint64 `json:"total"`      // connections the view has seen
	Evicted   uint64 `json:"evicted"`    // of them, pushed out of the history
	LastEvent uint64 `json:"last_event"` // the newest event id: follow /api/events from there
}

// pageQuery is what /api/records and /api/rows are asked for.
type pageQuery struct {
	since, limit uint64
	sel          inspect.Selector
}

func parsePage(r *http.Request) (pageQuery, error) {
	q := r.URL.Query()
	since, err := uintParam(q.Get("since"), 0)
	if err != nil {
		return pageQuery{}, fmt.Errorf("since: %w", err)
	}
	limit, err := uintParam(q.Get("limit"), defaultLimit)
	if err != nil || limit == 0 {
		return pageQuery{}, fmt.Errorf("limit: want a number from 1 to %d", maxLimit)
	}
	sel, err := inspect.ParseSelector(q.Get("sel"))
	if err != nil {
		return pageQuery{}, err
	}
	return pageQuery{since: since, limit: min(limit, maxLimit), sel: sel}, nil
}

// page calls fn with each entry after q.since that q.sel matches, and its
// record, up to q.limit of them, and returns the page's header: Next is
// the last one's seq (q.since when none matched). With keep, each record
// fn is given is the caller's to keep; else one record is reused for all
// (fn keeps none of its pointers).
func (s *Server) page(q pageQuery, keep bool, fn func(e *entry, r *inspect.ConnRecord)) (page[struct{}], error) {
	v := s.hist.snapshot(q.since)
	p := page[struct{}]{Next: q.since, Total: v.total, Evicted: v.evicted, LastEvent: v.lastID}
	var n uint64
	var keepErr error
	err := s.each(v.entries, func(e *entry, r *inspect.ConnRecord) bool {
		if !q.sel.Match(r) {
			return true
		}
		if keep {
			if r, keepErr = s.hist.record(e); keepErr != nil {
				return false
			}
		}
		fn(e, r)
		p.Next = e.seq
		n++
		return n < q.limit
	})
	return p, cmp.Or(err, keepErr)
}

// each unpacks the records of es in turn, into one record, and calls fn
// with each until it returns false. fn keeps none of the record's
// pointers.
func (s *Server) each(es []entry, fn func(e *entry, r *inspect.ConnRecord) bool) error {
	var r inspect.ConnRecord
	for i := range es {
		if err := s.hist.recordInto(&es[i], &r); err != nil {
			return err
		}
		if !fn(&es[i], &r) {
			break
		}
	}
	return nil
}

// handleRecords serves GET /api/records: records in the --log schema.
func (s *Server) handleRecords(w http.ResponseWriter, r *http.Request) {
	q, err := parsePage(r)
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	recs := []*inspect.ConnRecord{}
	h, err := s.page(q, true, func(_ *entry, rec *inspect.ConnRecord) { recs = append(recs, rec) })
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, page[*inspect.ConnRecord]{Records: recs, Next: h.Next, Total: h.Total, Evicted: h.Evicted, LastEvent: h.LastEvent})
}

// handleRows serves GET /api/rows: the page's compact rows.
func (s *Server) handleRows(w http.ResponseWriter, r *http.Request) {
	q, err := parsePage(r)
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	rows := []row{}
	h, err := s.page(q, false, func(e *entry, rec *inspect.ConnRecord) { rows = append(rows, newRow(e, rec, s.hist.seqOf)) })
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, page[row]{Records: rows, Next: h.Next, Total: h.Total, Evicted: h.Evicted, LastEvent: h.LastEvent})
}

// handleSummary serves GET /api/summary: tlsresume report's rows, made
// one record at a time.
func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	sel, err := inspect.ParseSelector(r.URL.Query().Get("sel"))
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := inspect.NewSummarizer()
	byUA := map[string]bool{} // programs a User-Agent named
	err = s.each(s.hist.snapshot(0).entries, func(e *entry, rec *inspect.ConnRecord) bool {
		if e.closed && sel.Match(rec) {
			sum.Add(rec)
			if rec.UserAgent != "" && inspect.ProgramName(rec.UserAgent) != "" {
				byUA[inspect.Program(rec)] = true
			}
		}
		return true
	})
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sums := sum.Summaries()
	out := make([]summaryRow, len(sums))
	for i, s := range sums {
		out[i] = summaryRow{Summary: s, ByUserAgent: byUA[s.Program]}
	}
	writeJSON(w, out)
}

// summaryRow is a row of /api/summary: the report's row, and whether a
// User-Agent named its program (else its JA4 did, and the page shows the
// row's likely_program beside it).
type summaryRow struct {
	*inspect.Summary
	ByUserAgent bool `json:"by_user_agent"`
}

// handleDiff serves GET /api/diff?a=SEL&b=SEL: tlsresume diff's answer.
func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var sels [2]inspect.Selector
	for i, key := range []string{"a", "b"} {
		sel, err := inspect.ParseSelector(q.Get(key))
		if err == nil && q.Get(key) == "" {
			err = errors.New("empty")
		}
		if err != nil {
			httpError(w, fmt.Sprintf("%s: want a selector such as program=curl,host=example.com (%v)", key, err), http.StatusBadRequest)
			return
		}
		sels[i] = sel
	}
	// Only the records either side selects are kept, not the history.
	var kept []*inspect.ConnRecord
	var keepErr error
	err := s.each(s.hist.snapshot(0).entries, func(e *entry, rec *inspect.ConnRecord) bool {
		if !e.closed || !sels[0].Match(rec) && !sels[1].Match(rec) {
			return true
		}
		var r *inspect.ConnRecord
		r, keepErr = s.hist.record(e)
		kept = append(kept, r)
		return keepErr == nil
	})
	if err = cmp.Or(err, keepErr); err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d, err := inspect.CompareSelected(kept, sels[0], sels[1])
	if err != nil {
		httpError(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, d)
	if len(kept) >= freeAfterDiff {
		// The records kept (some 1.7 KB each, unpacked) are garbage now,
		// but the heap's goal was set while they were live: the heap
		// would grow back to it before the next collection, and the RSS
		// stay at the diff's peak. Collect now and give the memory back.
		debug.FreeOSMemory()
	}
}

// freeAfterDiff is how many records a diff keeps unpacked before its
// memory is given back at once: some 17 MB.
const freeAfterDiff = 10_000

// status is GET /api/status: where the records come from and how many
// were lost on the way.
type status struct {
	Source        string    `json:"source"`
	Started       time.Time `json:"started"`
	History       int       `json:"history"` // the most records kept
	Total         uint64    `json:"total"`
	Evicted       uint64    `json:"evicted"`
	StreamDropped uint64    `json:"stream_dropped"` // events the proxy's stream dropped before the view
	Upstream      bool      `json:"upstream"`       // a proxy's upstream cache is there to show and flush
	TicketKeys    bool      `json:"ticket_keys"`    // a proxy's client ticket keys are there to show and rotate
	Passthrough   bool      `json:"passthrough"`    // a proxy's --auto-passthrough decisions are there to show and reset
	CA            bool      `json:"ca"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	v := s.hist.snapshot(^uint64(0))
	writeJSON(w, status{Source: s.cfg.Source, Started: s.started, History: s.cfg.History, Total: v.total,
		Evicted: v.evicted, StreamDropped: s.streamLost.Load(), Upstream: s.cfg.Upstream != nil, TicketKeys: s.cfg.TicketKeys != nil,
		Passthrough: s.cfg.Passthrough != nil, CA: s.cfg.CA != nil})
}

func (s *Server) handleUpstreamStats(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Upstream == nil {
		httpError(w, "no proxy behind this view: upstream statistics exist only live", http.StatusNotFound)
		return
	}
	writeJSON(w, s.cfg.Upstream.Stats())
}

func (s *Server) handleUpstreamFlush(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Upstream == nil {
		httpError(w, "no proxy behind this view: nothing to flush", http.StatusNotFound)
		return
	}
	s.cfg.Upstream.Flush()
	s.cfg.Log.Info().Str("from", "web").Msg("flushed the upstream session cache")
	writeJSON(w, s.cfg.Upstream.Stats())
}

// handlePassthrough serves GET /api/passthrough: the clients that
// --auto-passthrough passes through, and why.
func (s *Server) handlePassthrough(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Passthrough == nil {
		httpError(w, "no proxy behind this view: no auto-passthrough", http.StatusNotFound)
		return
	}
	writeJSON(w, s.cfg.Passthrough.List())
}

// handlePassthroughReset serves POST /api/passthrough/reset: every client
// is intercepted again.
func (s *Server) handlePassthroughReset(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Passthrough == nil {
		httpError(w, "no proxy behind this view: no auto-passthrough", http.StatusNotFound)
		return
	}
	writeJSON(w, map[string]int{"cleared": s.cfg.Passthrough.Reset()})
}

// handleTicketKeys serves GET /api/client/ticket-keys.
func (s *Server) handleTicketKeys(w http.ResponseWriter, r *http.Request) {
	if s.cfg.TicketKeys == nil {
		httpError(w, "no proxy behind this view: no ticket keys", http.StatusNotFound)
		return
	}
	writeJSON(w, s.cfg.TicketKeys.List())
}

// handleRotateTicketKeys serves POST /api/client/ticket-keys/rotate
// (?forget=1 drops the old keys too).
func (s *Server) handleRotateTicketKeys(w http.ResponseWriter, r *http.Request) {
	if s.cfg.TicketKeys == nil {
		httpError(w, "no proxy behind this view: no ticket keys", http.StatusNotFound)
		return
	}
	if err := s.cfg.TicketKeys.Rotate(r.URL.Query().Get("forget") == "1"); err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, s.cfg.TicketKeys.List())
}

func uintParam(v string, def uint64) (uint64, error) {
	if v == "" {
		return def, nil
	}
	return strconv.ParseUint(v, 10, 64)
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

// writeJSONStatus answers v as JSON with the status code.
func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// httpError answers with a JSON error.
func httpError(w http.ResponseWriter, msg string, code int) { guard.Error(w, msg, code) }
