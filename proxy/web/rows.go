package web

import (
	"net"
	"strconv"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// row is one connection as the page's list and timeline show it: the
// record's facts that the columns, filters and arrows need, worked out
// here so that the page holds 100,000 of them cheaply and names programs
// as the reports do. Details come from the records API.
type row struct {
	Seq     uint64    `json:"seq"`
	ID      string    `json:"id"`
	Open    bool      `json:"open,omitempty"` // not closed yet: no legs, no verdict
	Time    time.Time `json:"time"`
	Source  string    `json:"source"`
	Client  string    `json:"client"`  // IP
	Program string    `json:"program"` // inspect.Program
	// Likely names the program the hello's JA4 likely comes from (the JA4
	// table: "likely Safari/URLSession (JA4 table)"), when no User-Agent
	// named it; a likely match, never a fact.
	Likely  string `json:"likely,omitempty"`
	Host    string `json:"host"`              // inspect.HostOf: the port unless 443
	Version string `json:"version,omitempty"` // highest offered
	// Transport is "quic" for a hello carried in QUIC Initial packets,
	// empty for TCP.
	Transport string `json:"transport,omitempty"`
	Attempt   string `json:"attempt,omitempty"`
	Ticket    string `json:"tkt,omitempty"` // session_ticket: "" absent, "ask", or the ticket's length
	PSK       int    `json:"psk"`           // pre_shared_key identities, -1 absent
	// The client leg: resumed (nil: no handshake), and the lineage of the
	// ticket it brought back.
	Resumed     *bool  `json:"resumed,omitempty"`
	TicketsSent int    `json:"tickets_sent,omitempty"`
	TicketFrom  string `json:"ticket_from,omitempty"`
	TicketSeq   uint64 `json:"ticket_seq,omitempty"` // the issuer's row, when the view still has it
	TicketAgeMS int64  `json:"ticket_age_ms,omitempty"`
	ClientError string `json:"client_error,omitempty"`
	// The upstream leg, likewise.
	UpResumed    *bool  `json:"up_resumed,omitempty"`
	SessionFrom  string `json:"session_from,omitempty"`
	SessionSeq   uint64 `json:"session_seq,omitempty"`
	SessionAgeMS int64  `json:"session_age_ms,omitempty"`
	UpError      string `json:"up_error,omitempty"`
	Passthrough  bool   `json:"passthrough,omitempty"`
	// A connection read from a capture has no legs and no verdict: Capture
	// says what the server's answer shows (captureOutcome), ResumedBy what
	// it resumed by (psk, ticket, session_id), and Resumed whether it did.
	Capture   string `json:"capture,omitempty"`
	ResumedBy string `json:"resumed_by,omitempty"`

	Verdict    string  `json:"verdict,omitempty"`
	Family     string  `json:"family,omitempty"`
	Text       string  `json:"text,omitempty"`
	BytesUp    int64   `json:"bytes_up"`
	BytesDown  int64   `json:"bytes_down"`
	DurationMS float64 `json:"duration_ms"`
}

// newRow is e, whose record is r, as a row; seqOf finds the row of an
// earlier connection id. The row keeps none of r's pointers: r may be
// reused (history.recordInto).
func newRow(e *entry, r *inspect.ConnRecord, seqOf func(id string, before uint64) uint64) row {
	w := row{
		Seq: e.seq, ID: r.ID, Open: !e.closed, Time: r.Time, Source: string(r.Source),
		Client: hostOnly(r.ClientAddr), Program: inspect.Program(r), Host: inspect.HostOf(r), PSK: -1,
		Passthrough: r.Passthrough != "", BytesUp: r.BytesUp, BytesDown: r.BytesDown, DurationMS: r.DurationMS,
	}
	if r.Transport == inspect.TransportNameQUIC {
		w.Transport = r.Transport
	}
	if ch := r.ClientHello; ch != nil {
		if w.Program == inspect.JA4Program(ch.JA4) {
			w.Likely = inspect.LikelyProgram(ch.JA4)
		}
		w.Attempt = string(ch.Attempt)
		w.Version = inspect.VersionName(uint16(inspect.MaxVersion(ch)))
		switch {
		case !ch.SessionTicket.Offered:
		case ch.SessionTicket.Len == 0:
			w.Ticket = "ask"
		default:
			w.Ticket = strconv.Itoa(ch.SessionTicket.Len)
		}
		if ch.PreSharedKey.Offered {
			w.PSK = len(ch.PreSharedKey.Identities)
		}
	}
	if l := r.ClientLeg; l != nil {
		w.Resumed = boolPtr(l.Resumed)
		w.TicketsSent, w.TicketFrom, w.TicketAgeMS, w.ClientError = l.TicketsSent, l.TicketFrom, l.TicketAgeMS, l.Error
		if l.TicketFrom != "" {
			w.TicketSeq = seqOf(l.TicketFrom, e.seq)
		}
	}
	if sh := r.ServerHello; sh != nil && (r.Passthrough != "" || r.ClientLeg == nil) && sh.Complete {
		w.Resumed = boolPtr(sh.Resumed) // passed through, or a capture: what the real server did
		if sh.Resumed && sh.ResumedBy != nil {
			w.ResumedBy = string(*sh.ResumedBy)
		}
	}
	if u := r.UpstreamLeg; u != nil {
		w.UpResumed = boolPtr(u.Resumed)
		w.SessionFrom, w.SessionAgeMS, w.UpError = u.SessionFrom, u.SessionAgeMS, u.Error
		if u.SessionFrom != "" {
			w.SessionSeq = seqOf(u.SessionFrom, e.seq)
		}
	}
	switch {
	case !e.closed:
	case r.Verdict.Code == "" && r.ClientLeg == nil:
		w.Capture, w.Family = captureOutcome(r)
		w.Text = inspect.Explain(&r.Record)
	default:
		w.Verdict, w.Family, w.Text = string(r.Verdict.Code), r.Verdict.Code.Family(), r.Verdict.Text
	}
	return w
}

// captureOutcome is what a record read from a capture shows of its
// connection, in place of a verdict: whether the server resumed it and by
// what ("resumed_psk", "resumed_ticket", "resumed_session_id"), refused
// what the client offered ("refused_psk", …), made a full handshake
// ("full") or asked for another hello ("hello_retry"); "not_seen" when
// the capture does not hold enough of the answer, "no_hello" when the
// hello could not be read. family colours it as verdict families do.
func captureOutcome(r *inspect.ConnRecord) (key, family string) {
	ch, sh := r.ClientHello, r.ServerHello
	switch {
	case ch == nil:
		return "no_hello", "failed"
	case sh != nil && sh.HRR:
		return "hello_retry", "first"
	case sh == nil || !sh.Complete:
		return "not_seen", "unknown"
	case sh.Resumed && sh.ResumedBy != nil:
		return "resumed_" + string(*sh.ResumedBy), "resumed"
	case sh.Resumed:
		return "resumed", "resumed"
	case ch.Attempt != inspect.AttemptNone:
		return "refused_" + string(ch.Attempt), "client"
	}
	return "full", "first"
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func boolPtr(b bool) *bool { return &b }
