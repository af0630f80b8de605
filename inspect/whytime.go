package inspect

import (
	"slices"
	"time"
)

// timeline holds one summary row's connections in the order they started
// and says, for each in turn, what had happened before it started: the
// tickets tlsresume had issued to the others and which of those had been
// brought back, or, in a capture, the answers the server had given. It
// reads each connection a constant number of times, so a row of a live
// view's 100,000 connections costs no more than a sort.
type timeline struct {
	recs  []*ConnRecord
	start []time.Time // recs[i]'s start: its time, or, in a row of records without one, its place a second apart
	// Proxy records: tickets issued (at start plus handshake_ms, when the
	// handshake ended) and brought back (at start, naming the issuer), by
	// time; the sweep's position in each and what it has counted.
	issues, brings []ticketEvent
	ii, bi         int
	issued, back   int
	issuers        map[string]bool // connections whose issue the sweep has passed
	pending        map[string]int  // brought back before the sweep passed the issue
	// Captures: the earliest complete answer, and the earliest TLS 1.2 one
	// that left a session ID or ticket (nil: none).
	answered, issued12 *time.Time
}

type ticketEvent struct {
	at time.Time
	n  int
	id string // the issuer
}

func newTimeline(recs []*ConnRecord) *timeline {
	tl := &timeline{recs: slices.Clone(recs), start: make([]time.Time, len(recs)), issuers: map[string]bool{}, pending: map[string]int{}}
	slices.SortStableFunc(tl.recs, func(a, b *ConnRecord) int { return a.Time.Compare(b.Time) })
	untimed := !slices.ContainsFunc(tl.recs, func(r *ConnRecord) bool { return !r.Time.IsZero() })
	for i, r := range tl.recs {
		at := r.Time
		if untimed {
			at = time.Unix(int64(i), 0)
		}
		tl.start[i] = at
		if l := r.ClientLeg; l != nil {
			if l.TicketsSent > 0 {
				end := at.Add(time.Duration(l.HandshakeMS * float64(time.Millisecond)))
				tl.issues = append(tl.issues, ticketEvent{at: end, n: l.TicketsSent, id: r.ID})
			}
			if l.TicketFrom != "" {
				tl.brings = append(tl.brings, ticketEvent{at: at, n: 1, id: l.TicketFrom})
			}
		}
		if sh := r.ServerHello; sh != nil && sh.Complete && !sh.HRR {
			if tl.answered == nil {
				tl.answered = &tl.start[i]
			}
			if tl.issued12 == nil && issuedTLS12(sh) {
				tl.issued12 = &tl.start[i]
			}
		}
	}
	slices.SortStableFunc(tl.issues, func(a, b ticketEvent) int { return a.at.Compare(b.at) })
	return tl
}

// tickets counts the tickets tlsresume had issued to the row's connections
// before the i-th started, and how many of them no connection had brought
// back by then (ticket_from names the issuer). A connection's tickets go
// out as its handshake ends, at about its time plus handshake_ms, so the
// first connections of a page load, opened in parallel before any
// handshake ended, had none to offer. Called with i increasing.
func (tl *timeline) tickets(i int) (issued, unused int) {
	t := tl.start[i]
	for ; tl.ii < len(tl.issues) && tl.issues[tl.ii].at.Before(t); tl.ii++ {
		e := tl.issues[tl.ii]
		tl.issued += e.n
		tl.issuers[e.id] = true
		tl.back += tl.pending[e.id]
	}
	for ; tl.bi < len(tl.brings) && tl.brings[tl.bi].at.Before(t); tl.bi++ {
		if e := tl.brings[tl.bi]; tl.issuers[e.id] {
			tl.back++
		} else {
			tl.pending[e.id]++
		}
	}
	return tl.issued, max(tl.issued-tl.back, 0)
}

// answeredBefore reports whether the server had completed an answer to an
// earlier hello of the row before the i-th started.
func (tl *timeline) answeredBefore(i int) bool {
	return tl.answered != nil && tl.answered.Before(tl.start[i])
}

// issuedTLS12Before reports whether a TLS 1.2 answer to an earlier hello
// had left a session ID or ticket before the i-th started.
func (tl *timeline) issuedTLS12Before(i int) bool {
	return tl.issued12 != nil && tl.issued12.Before(tl.start[i])
}
