package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// Every ticket tlsresume issues carries a stamp in SessionState.Extra, which
// crypto/tls carries in the ticket but ignores (crypto/tls/ticket.go): the
// connection that issued it, when, and (from version 2) the id of the key
// that encrypted it.
var (
	stampPrefixV1 = []byte("tlsresume/1\x00") // issued time, connection id
	stampPrefix   = []byte("tlsresume/2\x00") // issued time, key id (4 bytes), connection id
)

// stamp encodes which connection issued a ticket, when, and under which
// key (keyID, as TicketKeys names keys: 8 hex digits).
func stamp(connID string, issued time.Time, keyID string) []byte {
	b := append([]byte(nil), stampPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(issued.UnixNano()))
	id, _ := hex.DecodeString(keyID)
	b = append(b, make([]byte, 4)...)
	copy(b[len(b)-4:], id)
	return append(b, connID...)
}

// ticketStamp is what a stamp says.
type ticketStamp struct {
	connID string
	issued time.Time
	keyID  string // "" in a version 1 stamp
}

// readStamp finds tlsresume's stamp among a session's Extra values.
func readStamp(extra [][]byte) (ticketStamp, bool) {
	for _, e := range extra {
		switch {
		case bytes.HasPrefix(e, stampPrefix) && len(e) >= len(stampPrefix)+12:
			rest := e[len(stampPrefix):]
			return ticketStamp{connID: string(rest[12:]), issued: time.Unix(0, int64(binary.BigEndian.Uint64(rest))),
				keyID: hex.EncodeToString(rest[8:12])}, true
		case bytes.HasPrefix(e, stampPrefixV1) && len(e) >= len(stampPrefixV1)+8:
			rest := e[len(stampPrefixV1):]
			return ticketStamp{connID: string(rest[8:]), issued: time.Unix(0, int64(binary.BigEndian.Uint64(rest)))}, true
		}
	}
	return ticketStamp{}, false
}

// lineage hooks a per-connection tls.Config's ticket wrapping so that the
// client leg records what it issued and what the client brought back, and
// so that --client-resumption can refuse a ticket on purpose.
type lineage struct {
	connID string
	now    func() time.Time
	leg    *inspect.ClientLeg
	keys   *TicketKeys
	keyID  string         // the key that encrypts this connection's tickets
	rule   ResumptionRule // what --client-resumption says for this host
	c      *conn          // its connection, whose client learned notes each ticket issued (nil: none)
}

// install sets cfg.WrapSession and cfg.UnwrapSession. cfg must be the
// per-connection clone: the hooks encrypt with cfg's (shared) ticket keys.
func (l *lineage) install(cfg *tls.Config) {
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		now := l.now()
		ss.Extra = append(ss.Extra, stamp(l.connID, now, l.keyID))
		l.leg.TicketsSent++
		if l.c != nil {
			// Known from this moment: a client's later hello had it to offer.
			l.c.s.learned.issuedTicket(l.c, now)
		}
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		if len(identity) == 0 {
			// crypto/tls asks about an empty TLS 1.2 session_ticket too
			// (handshake_server.go): the client asked for a ticket, it did
			// not offer one.
			return nil, nil
		}
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil {
			return nil, err
		}
		if l.leg.Ticket == inspect.TicketOurs {
			return ss, nil // an earlier identity of this hello already matched
		}
		if ss == nil {
			// DecryptTicket returns nil, nil for a ticket under an unknown key.
			l.leg.Ticket = inspect.TicketNotOurs
			return nil, nil
		}
		st, ok := readStamp(ss.Extra)
		if !ok {
			l.leg.Ticket = inspect.TicketNotOurs
			return ss, nil
		}
		now := l.now()
		age := now.Sub(st.issued)
		l.leg.TicketFrom, l.leg.TicketAgeMS = st.connID, age.Milliseconds()
		if created, ok := l.keys.created(st.keyID); ok {
			l.leg.TicketKeyID, l.leg.TicketKeyAgeMS = st.keyID, now.Sub(created).Milliseconds()
		}
		switch {
		case age > ticketKeyLifetime:
			l.leg.Ticket = inspect.TicketExpired
		case l.rule.refuses(age):
			// Refused on purpose: crypto/tls skips an identity whose
			// session is nil, and does a full handshake.
			l.leg.Ticket, l.leg.RefusedBy = inspect.TicketRefused, l.rule.String()
			return nil, nil
		default:
			l.leg.Ticket = inspect.TicketOurs
		}
		return ss, nil
	}
}
