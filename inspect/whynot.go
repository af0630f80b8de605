package inspect

import (
	"fmt"
	"slices"
	"strings"
)

// A Reason is one reason in a summary row's why-not: how many of the row's
// connections it covers, in words.
type Reason struct {
	// Key names the reason: "resumed"; for a client that offered nothing,
	// "nothing_to_resume" (no ticket had been issued to the row's
	// connections before it started), "tickets_used_up" (every ticket
	// issued before it started had been brought back by another
	// connection) or "offered_nothing" (one had been issued and not
	// brought back); a verdict code; and for captures, which carry no
	// verdict: "resumed_psk", "resumed_ticket", "resumed_session_id",
	// "refused_psk", "refused_ticket", "refused_session_id",
	// "first_connection", "nothing_tls13", "no_psk_modes", "nothing_tls12",
	// "nothing_tls12_issued", "answer_not_seen", "no_hello".
	Key   string `json:"key"`
	Leg   string `json:"leg"`            // "client", or "upstream" for tlsresume's own handshakes
	Conns int    `json:"conns"`          // connections it covers
	Code  string `json:"code,omitempty"` // the verdict code it comes from, when one does
	Words string `json:"words"`          // e.g. "offered nothing although a ticket had been issued before they started"
}

// whyRow gathers the records of one summary row.
type whyRow struct {
	recs []*ConnRecord
}

// reasons classifies each connection of the row, on the client leg (its
// handshake with tlsresume, or with the server in a capture) and on the
// upstream leg, and counts them, commonest first.
func (w *whyRow) reasons() []Reason {
	tl := newTimeline(w.recs)
	var out []Reason
	add := func(r Reason) {
		for i := range out {
			if out[i].Key == r.Key && out[i].Leg == r.Leg {
				out[i].Conns++
				return
			}
		}
		r.Conns = 1
		out = append(out, r)
	}
	for i, r := range tl.recs {
		add(clientReason(r, tl, i))
		if u, ok := upstreamReason(r); ok {
			add(u)
		}
	}
	slices.SortStableFunc(out, func(a, b Reason) int {
		switch {
		case a.Leg != b.Leg:
			return strings.Compare(a.Leg, b.Leg) // client before upstream
		case a.Conns != b.Conns:
			return b.Conns - a.Conns
		}
		return reasonRank(a.Key) - reasonRank(b.Key)
	})
	for i := range out {
		out[i].Words = reasonWords(out[i], w.recs)
	}
	return out
}

// reasonRank orders reasons of equal counts: what stood in the way first,
// then resumptions, then connections that had nothing to resume yet.
func reasonRank(k string) int {
	switch {
	case resumedKey(k):
		return 1
	case k == "nothing_to_resume" || k == "first_connection":
		return 2
	}
	return 0
}

// clientReason is why r, the i-th connection of tl, did or did not resume
// its client handshake; called for each connection in turn.
func clientReason(r *ConnRecord, tl *timeline, i int) Reason {
	v := r.Verdict
	if v.Code == "" {
		return captureReason(r, tl, i)
	}
	c := v.Client
	if c == "" {
		c = v.Code
	}
	switch {
	case r.ClientLeg != nil && r.ClientLeg.Resumed, c.Family() == "resumed":
		return Reason{Key: "resumed", Leg: "client"}
	case r.ClientLeg != nil && r.ClientLeg.Error == "" && r.ClientHello != nil && r.ClientHello.Attempt == AttemptNone &&
		(c == CodeClientFirstContact || c == CodeFirstContact || c == CodeClientOfferedNothing):
		// Decided here from the records, not taken from the verdict: a
		// ticket counts only if it was issued before this connection
		// started and no earlier connection had brought it back (older
		// logs' verdicts counted any earlier connection's).
		switch issued, unused := tl.tickets(i); {
		case unused > 0:
			return Reason{Key: "offered_nothing", Leg: "client", Code: string(CodeClientOfferedNothing)}
		case issued > 0:
			return Reason{Key: "tickets_used_up", Leg: "client"}
		}
		return Reason{Key: "nothing_to_resume", Leg: "client"}
	}
	return Reason{Key: string(c), Leg: "client", Code: string(c)}
}

// upstreamReason is why tlsresume's own handshake for r did not resume,
// when that says something about the origin or the cache.
func upstreamReason(r *ConnRecord) (Reason, bool) {
	if c := r.Verdict.Upstream; c.Family() == "upstream" || c == CodeUpstreamFailed {
		return Reason{Key: string(c), Leg: "upstream", Code: string(c)}, true
	}
	return Reason{}, false
}

// captureReason is what a capture shows of r: whether the server resumed
// it and by what, or what the hello offered. A capture has no verdict and,
// over TLS 1.3, cannot see tickets (they are encrypted).
func captureReason(r *ConnRecord, tl *timeline, i int) Reason {
	ch, sh := r.ClientHello, r.ServerHello
	key := ""
	switch {
	case ch == nil:
		key = "no_hello"
	case sh == nil || !sh.Complete:
		key = "answer_not_seen"
	case sh.Resumed && sh.ResumedBy != nil:
		key = "resumed_" + string(*sh.ResumedBy)
	case sh.Resumed:
		key = "resumed"
	case ch.Attempt != AttemptNone:
		key = "refused_" + string(ch.Attempt)
	case !tl.answeredBefore(i):
		key = "first_connection"
	case sh.Version >= int(VersionTLS13) && ch.PSKKeyExchangeModes == nil:
		key = "no_psk_modes" // RFC 8446, Section 4.2.9: no modes, no tickets
	case sh.Version >= int(VersionTLS13):
		key = "nothing_tls13"
	case tl.issuedTLS12Before(i):
		key = "nothing_tls12_issued"
	default:
		key = "nothing_tls12"
	}
	return Reason{Key: key, Leg: "client"}
}

// issuedTLS12: a TLS 1.2 server answer that left something to resume with:
// a session ID (RFC 5246, Section 7.4.1.3) or a ticket in the clear (RFC
// 5077, Section 3.3).
func issuedTLS12(sh *ServerHelloRecord) bool {
	return sh.Version <= int(VersionTLS12) && (sh.SessionIDLen > 0 || sh.NewSessionTicket != nil)
}

// whyNotText joins a row's reasons: "resumes" when every connection did,
// "resumes (2 of 3; the other had nothing to resume yet)" when the others
// could not have, "first contact only" for one connection that could not
// have; else each reason with its count, commonest first ("6 of 11
// offered nothing although … (client_offered_nothing); 5 resumed"); then
// the upstream leg's reasons.
func whyNotText(reasons []Reason, conns int) string {
	var client, upstream []Reason
	resumed, nothing := 0, 0
	for _, r := range reasons {
		switch {
		case r.Leg == "upstream":
			upstream = append(upstream, r)
			continue
		case resumedKey(r.Key):
			resumed += r.Conns
		case r.Key == "nothing_to_resume" || r.Key == "first_connection":
			nothing += r.Conns
		}
		client = append(client, r)
	}
	var text string
	switch {
	case resumed+nothing == conns && resumed > 0:
		text = "resumes"
		if by, ok := strings.CutPrefix(client[0].Key, "resumed_"); ok && client[0].Conns == resumed {
			text += " by " + byWords[by]
		}
		switch {
		case nothing == 1:
			text += fmt.Sprintf(" (%d of %d; the other had nothing to resume yet)", resumed, conns)
		case nothing > 1:
			text += fmt.Sprintf(" (%d of %d; the other %d had nothing to resume yet)", resumed, conns, nothing)
		}
	case nothing == conns && conns == 1:
		text = "first contact only"
	default:
		text = joinReasons(client, conns)
	}
	if len(upstream) > 0 {
		text += "; upstream: " + joinReasons(upstream, conns)
	}
	return text
}

func resumedKey(k string) bool { return k == "resumed" || strings.HasPrefix(k, "resumed_") }

func joinReasons(rs []Reason, conns int) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.text(i == 0, conns)
	}
	return strings.Join(parts, "; ")
}

// text is one reason with its count: "6 of 11 …" for the first of a leg,
// "5 …" after it, "all 3 …" or "the one connection …" when it covers
// them all; the verdict code, if any, in parentheses.
func (r Reason) text(first bool, conns int) string {
	n := fmt.Sprint(r.Conns)
	switch {
	case r.Conns == conns && conns == 1:
		n = "the one connection"
	case r.Conns == conns:
		n = fmt.Sprintf("all %d", conns)
	case first:
		n = fmt.Sprintf("%d of %d", r.Conns, conns)
	}
	s := n + " " + r.Words
	if r.Code != "" {
		s += " (" + r.Code + ")"
	}
	return s
}

// whyCopy is what a row's why-not is decided by, of e, in a record of its
// own: a Summarizer may be handed one record reused for each (the live
// view unpacks into one), so it keeps none of e's pointers. What reasons,
// timeline, reasonWords and likelyProgram read must be copied here.
func whyCopy(e *ConnRecord) *ConnRecord {
	c := &ConnRecord{ID: e.ID, Verdict: e.Verdict}
	c.Time = e.Time
	if h := e.ClientHello; h != nil {
		c.ClientHello = &ClientHelloRecord{Attempt: h.Attempt, JA4: h.JA4}
		if h.PSKKeyExchangeModes != nil {
			c.ClientHello.PSKKeyExchangeModes = []int{} // only whether it was there counts
		}
	}
	if sh := e.ServerHello; sh != nil {
		s := &ServerHelloRecord{Complete: sh.Complete, HRR: sh.HRR, Resumed: sh.Resumed, Version: sh.Version, SessionIDLen: sh.SessionIDLen}
		if sh.ResumedBy != nil {
			by := *sh.ResumedBy
			s.ResumedBy = &by
		}
		if sh.NewSessionTicket != nil {
			s.NewSessionTicket = &TicketFact{}
		}
		c.ServerHello = s
	}
	if l := e.ClientLeg; l != nil {
		c.ClientLeg = &ClientLeg{Resumed: l.Resumed, Error: l.Error, TicketsSent: l.TicketsSent, HandshakeMS: l.HandshakeMS, TicketFrom: l.TicketFrom}
	}
	if m := e.Mirrored; m != nil {
		c.Mirrored = &Mirrored{Overrides: slices.Clone(m.Overrides)}
	}
	return c
}
