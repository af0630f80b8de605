package proxy

import (
	"crypto/tls"

	"golang.org/x/crypto/cryptobyte"

	"github.com/tlsresume/tlsresume/inspect"
)

// mirrorTickets decides whether the client leg issues tickets (cfg,
// m.Tickets): as the origin does, unless --client-tickets says otherwise.
// Whether the origin issues tickets is known from this connection's own
// upstream handshake when it was TLS 1.2 (originIssuesTickets), else from
// earlier connections to it.
//
// A ticket tlsresume issued itself is never refused for mirroring: a client
// that got one before tlsresume learned that the origin issues none (a TLS
// 1.3 origin's tickets come after the handshake, so the first connection
// cannot know) resumes with it. crypto/tls then renews it, as it does on
// every resumption (handshake_server.go: "We always send a new session
// ticket"; handshake_server_tls13.go, sendSessionTickets). Only
// --client-resumption refuses a ticket of tlsresume's on purpose, and
// --client-tickets=false turns tickets off both ways.
func (c *conn) mirrorTickets(cfg *tls.Config, m *inspect.Mirrored) {
	tickets := true
	switch c.s.cfg.ClientTickets {
	case "off":
		tickets = false
		m.Overrides = append(m.Overrides, "client_tickets")
	case "on":
		m.Overrides = append(m.Overrides, "client_tickets")
	default:
		tickets = c.originIssuesTickets()
	}
	m.Tickets = tickets
	ch := c.rec.ClientHello
	if tickets || ch == nil || ch.Attempt == inspect.AttemptNone || ch.Attempt == inspect.AttemptSessionID {
		cfg.SessionTicketsDisabled = !tickets
		return
	}
	switch {
	case c.s.cfg.ClientTickets == "off":
		c.clientLeg.Ticket = inspect.TicketDisabled
	case offersOurTicket(&c.hello, cfg): // before tickets are disabled: cfg then holds no keys
		return // accepted: lineage records it
	default:
		// Not tlsresume's: nothing it could have resumed.
		c.clientLeg.Ticket = inspect.TicketNotOurs
	}
	cfg.SessionTicketsDisabled = true
}

// originIssuesTickets says whether the origin issues tickets: what this
// connection's own upstream handshake says when it can (TLS 1.2), else
// what earlier connections to it said (an origin not seen yet is taken to
// issue them).
func (c *conn) originIssuesTickets() bool {
	if issued, known := c.up.issuesTickets(); known {
		return issued
	}
	return !c.s.learned.issuesNoTickets(c.origin)
}

// offersOurTicket says whether the hello offers a ticket that tlsresume
// issued (it decrypts under cfg's ticket keys and carries tlsresume's
// stamp): a TLS 1.2 session_ticket, or a TLS 1.3 pre_shared_key identity.
func offersOurTicket(h *inspect.ClientHello, cfg *tls.Config) bool {
	ours := func(identity []byte) bool {
		ss, err := cfg.DecryptTicket(identity, tls.ConnectionState{})
		if err != nil || ss == nil {
			return false
		}
		_, ok := readStamp(ss.Extra)
		return ok
	}
	for _, e := range h.Extensions {
		switch e.Type {
		case inspect.ExtSessionTicket:
			if len(e.Data) > 0 && ours(e.Data) {
				return true
			}
		case inspect.ExtPreSharedKey:
			// RFC 8446, Section 4.2.11: identities<7..2^16-1>, each an
			// identity<1..2^16-1> and a uint32 obfuscated_ticket_age.
			s := cryptobyte.String(e.Data)
			var ids cryptobyte.String
			if !s.ReadUint16LengthPrefixed(&ids) {
				return false
			}
			for !ids.Empty() {
				var id []byte
				var age uint32
				if !ids.ReadUint16LengthPrefixed((*cryptobyte.String)(&id)) || !ids.ReadUint32(&age) {
					return false
				}
				if ours(id) {
					return true
				}
			}
		}
	}
	return false
}
