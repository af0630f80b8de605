package proxy

import (
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestDecide: the verdict of each combination of record and memory, as a
// table over the pure function. The real connections that reach each code
// are in verdicts_test.go; this table pins the precedence between legs:
// a failure, then agreement, then the client leg's code, then the upstream's.
func TestDecide(t *testing.T) {
	none := &inspect.ClientHelloRecord{Attempt: inspect.AttemptNone, SessionTicket: inspect.SessionTicketFact{Offered: true}}
	bare := &inspect.ClientHelloRecord{Attempt: inspect.AttemptNone} // no session_ticket extension at all
	psk := &inspect.ClientHelloRecord{Attempt: inspect.AttemptPSK, PreSharedKey: inspect.PSKFact{Offered: true, Identities: []inspect.PSKIdentity{{}}}}
	ticket := &inspect.ClientHelloRecord{Attempt: inspect.AttemptTicket, SessionTicket: inspect.SessionTicketFact{Offered: true, Len: 200}}
	sid := &inspect.ClientHelloRecord{Attempt: inspect.AttemptSessionID}
	leg13 := func(mod func(*inspect.ClientLeg)) *inspect.ClientLeg {
		l := &inspect.ClientLeg{Version: "1.3", Ticket: inspect.TicketNone}
		if mod != nil {
			mod(l)
		}
		return l
	}
	up := func(mod func(*inspect.UpstreamLeg)) *inspect.UpstreamLeg {
		u := &inspect.UpstreamLeg{Version: "1.3", Cache: inspect.CacheMiss, Offered: inspect.AttemptNone}
		if mod != nil {
			mod(u)
		}
		return u
	}
	resumedUp := up(func(u *inspect.UpstreamLeg) { u.Resumed, u.Cache, u.SessionFrom = true, inspect.CacheHit, "c1" })
	for _, tt := range []struct {
		name                   string
		rec                    inspect.ConnRecord
		facts                  verdictFacts
		code, client, upstream inspect.VerdictCode
		text                   string // a part of the text
	}{
		{"first contact", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamFirstContact, "first contact"},
		{"both resumed", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Resumed, l.TicketFrom, l.Ticket = true, "c1", inspect.TicketOurs }), UpstreamLeg: resumedUp}, verdictFacts{},
			inspect.CodeBothResumed, inspect.CodeClientResumed, inspect.CodeUpstreamResumed, "ticket from c1"},
		{"client resumed, upstream flushed", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Resumed = true }), UpstreamLeg: up(nil)}, verdictFacts{originSeen: true},
			inspect.CodeUpstreamCacheMiss, inspect.CodeClientResumed, inspect.CodeUpstreamCacheMiss, "evicted or flushed"},
		{"not tls", inspect.ConnRecord{}, verdictFacts{notTLS: true},
			inspect.CodeNotTLS, inspect.CodeNotTLS, inspect.CodeUpstreamNotAttempted, "not TLS"},
		{"no hello", inspect.ConnRecord{Record: inspect.Record{Error: "truncated"}}, verdictFacts{},
			inspect.CodeClientNoHello, inspect.CodeClientNoHello, inspect.CodeUpstreamNotAttempted, "truncated"},
		{"upstream failed beats the client", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.Error = "dial: refused" })}, verdictFacts{},
			inspect.CodeUpstreamFailed, inspect.CodeClientHandshakeFailed, inspect.CodeUpstreamFailed, "refused"},
		{"rejected certificate", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Error, l.Alert = "remote error", "unknown_ca" }), UpstreamLeg: resumedUp}, verdictFacts{},
			inspect.CodeClientRejectedCert, inspect.CodeClientRejectedCert, inspect.CodeUpstreamResumed, "unknown_ca"},
		{"closed after certificate", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Error, l.ClosedAfterCertificate = "EOF", true }), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientRejectedCert, inspect.CodeClientRejectedCert, inspect.CodeUpstreamFirstContact, "pins"},
		{"handshake failed", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Error = "no cipher suite" }), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientHandshakeFailed, inspect.CodeClientHandshakeFailed, inspect.CodeUpstreamFirstContact, "no cipher suite"},
		{"offered nothing after a ticket", inspect.ConnRecord{Record: inspect.Record{ClientHello: bare}, ClientLeg: leg13(nil), UpstreamLeg: resumedUp}, verdictFacts{ticketBefore: "c7"},
			inspect.CodeClientOfferedNothing, inspect.CodeClientOfferedNothing, inspect.CodeUpstreamResumed, "on c7"},
		{"asked for a ticket after one", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: resumedUp}, verdictFacts{ticketBefore: "c2"},
			inspect.CodeClientOfferedNothing, inspect.CodeClientOfferedNothing, inspect.CodeUpstreamResumed, "on c2"},
		{"session ID only, tls1.2", inspect.ConnRecord{Record: inspect.Record{ClientHello: bare}, ClientLeg: &inspect.ClientLeg{Version: "1.2", Ticket: inspect.TicketNone}, UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientSessionIDOnly, inspect.CodeClientSessionIDOnly, inspect.CodeUpstreamFirstContact, "session ID"},
		{"session ID attempt", inspect.ConnRecord{Record: inspect.Record{ClientHello: sid}, ClientLeg: &inspect.ClientLeg{Version: "1.2", Ticket: inspect.TicketNone}, UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientSessionIDOnly, inspect.CodeClientSessionIDOnly, inspect.CodeUpstreamFirstContact, "session ID"},
		{"ticket not ours", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Ticket = inspect.TicketNotOurs }), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientTicketNotOurs, inspect.CodeClientTicketNotOurs, inspect.CodeUpstreamFirstContact, "cannot decrypt"},
		{"ticket expired", inspect.ConnRecord{Record: inspect.Record{ClientHello: ticket}, ClientLeg: &inspect.ClientLeg{Version: "1.2", Ticket: inspect.TicketExpired, TicketFrom: "c1", TicketAgeMS: 8 * 24 * 3600 * 1000}, UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientTicketExpired, inspect.CodeClientTicketExpired, inspect.CodeUpstreamFirstContact, "expired"},
		{"refused on purpose", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) {
			l.Ticket, l.RefusedBy, l.TicketFrom = inspect.TicketRefused, "--client-resumption refuse", "c1"
		}), UpstreamLeg: resumedUp}, verdictFacts{},
			inspect.CodeClientResumptionRefused, inspect.CodeClientResumptionRefused, inspect.CodeUpstreamResumed, "--client-resumption refuse"},
		{"aged out on purpose", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) {
			l.Ticket, l.RefusedBy, l.TicketFrom, l.TicketAgeMS = inspect.TicketRefused, "--client-resumption expire-after=10m0s", "c1", 660000
		}), UpstreamLeg: resumedUp}, verdictFacts{},
			inspect.CodeClientTicketAgedOut, inspect.CodeClientTicketAgedOut, inspect.CodeUpstreamResumed, "11.0min old"},
		{"ticket refused", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Ticket = inspect.TicketOurs }), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientTicketRefused, inspect.CodeClientTicketRefused, inspect.CodeUpstreamFirstContact, "not accepted"},
		{"tickets disabled, ticket offered", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk}, ClientLeg: leg13(func(l *inspect.ClientLeg) { l.Ticket = inspect.TicketDisabled }), UpstreamLeg: up(nil)}, verdictFacts{},
			inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamFirstContact, "accepts no tickets"},
		{"tickets disabled", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(nil)}, verdictFacts{ticketsDisabled: true, ticketBefore: "c1"},
			inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamFirstContact, "issues no tickets"},
		{"new address", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.RemoteAddr = "127.0.0.2:443" })}, verdictFacts{nameSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamNewAddress, "127.0.0.2:443"},
		{"pending", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(nil)}, verdictFacts{originOpen: true, nameSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamTicketPending, "still open"},
		{"no ticket from origin", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(nil)}, verdictFacts{originSeen: true, originIssuedNoTkt: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamNoTicket, "issued no ticket"},
		{"cache off", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.Cache = inspect.CacheOff })}, verdictFacts{originSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamCacheOff, "off"},
		{"cache expired", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.Cache, u.SessionAgeMS = inspect.CacheExpired, 700000 })}, verdictFacts{originSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamCacheExpired, "11.7min"},
		{"cache dropped", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.Cache = inspect.CacheDropped })}, verdictFacts{originSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamCacheDropped, "discarded"},
		{"ticket refused upstream", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, ClientLeg: leg13(nil), UpstreamLeg: up(func(u *inspect.UpstreamLeg) { u.Cache, u.Offered = inspect.CacheHit, inspect.AttemptPSK })}, verdictFacts{originSeen: true},
			inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamTicketRefused, "cached psk"},
		{"passthrough resumed", inspect.ConnRecord{Record: inspect.Record{ClientHello: psk, ServerHello: &inspect.ServerHelloRecord{Complete: true, Resumed: true}}, Passthrough: "pinned"}, verdictFacts{},
			inspect.CodePassthroughResumed, inspect.CodePassthroughResumed, inspect.CodeUpstreamNotAttempted, "pinned"},
		{"passthrough not resumed", inspect.ConnRecord{Record: inspect.Record{ClientHello: none, ServerHello: &inspect.ServerHelloRecord{Complete: true}}, Passthrough: "pinned"}, verdictFacts{},
			inspect.CodePassthroughNotResumed, inspect.CodePassthroughNotResumed, inspect.CodeUpstreamNotAttempted, "passed through"},
		{"passthrough unknown", inspect.ConnRecord{Record: inspect.Record{ClientHello: none}, Passthrough: "pinned"}, verdictFacts{},
			inspect.CodePassthroughUnknown, inspect.CodePassthroughUnknown, inspect.CodeUpstreamNotAttempted, "passed through"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := decide(&tt.rec, tt.facts)
			if v.Code != tt.code || v.Client != tt.client || v.Upstream != tt.upstream {
				t.Errorf("verdict %s (client %s, upstream %s), want %s (%s, %s): %s", v.Code, v.Client, v.Upstream, tt.code, tt.client, tt.upstream, v.Text)
			}
			if !strings.Contains(v.Text, tt.text) {
				t.Errorf("text %q lacks %q", v.Text, tt.text)
			}
		})
	}
}
