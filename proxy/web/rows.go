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
	Host    string    `json:"host"`
	Version string    `json:"version,omitempty"` // highest offered
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
	if sh := r.ServerHello; sh != nil && r.Passthrough != "" && sh.Complete {
		w.Resumed = boolPtr(sh.Resumed) // passed through: what the real server did
	}
	if u := r.UpstreamLeg; u != nil {
		w.UpResumed = boolPtr(u.Resumed)
		w.SessionFrom, w.SessionAgeMS, w.UpError = u.SessionFrom, u.SessionAgeMS, u.Error
		if u.SessionFrom != "" {
			w.SessionSeq = seqOf(u.SessionFrom, e.seq)
		}
	}
	if e.closed {
		w.Verdict, w.Family, w.Text = string(r.Verdict.Code), r.Verdict.Code.Family(), r.Verdict.Text
	}
	return w
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func boolPtr(b bool) *bool { return &b }
