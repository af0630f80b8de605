package inspect

import (
	"slices"
	"strings"
)

// byWords names what a server resumed a client by.
var byWords = map[string]string{
	string(AttemptPSK):       "PSK",
	string(AttemptTicket):    "TLS 1.2 ticket",
	string(AttemptSessionID): "session ID",
}

// reasonWords says a reason in words that follow its count ("6 offered
// nothing …"), from the row's records where they tell more.
func reasonWords(r Reason, recs []*ConnRecord) string {
	they := "it"
	if r.Conns != 1 {
		they = "they"
	}
	if by, ok := strings.CutPrefix(r.Key, "resumed_"); ok {
		return "resumed by " + byWords[by]
	}
	if what, ok := strings.CutPrefix(r.Key, "refused_"); ok {
		return "offered a " + byWords[what] + " the server did not resume"
	}
	switch r.Key {
	case "resumed":
		return "resumed"
	case "nothing_to_resume":
		return "had nothing to resume: no ticket had been issued before " + they + " started"
	case "tickets_used_up":
		return "offered nothing: every ticket issued before " + they + " started had been brought back by another connection"
	case "offered_nothing":
		s := "offered nothing although a ticket issued before " + they + " started was still unused"
		if appleRow(recs) {
			s += ", likely Apple's stack (JA4 table): the URLSession pattern"
		}
		return s
	case "first_connection":
		return "had nothing to resume: the first connection"
	case "nothing_tls13":
		return "offered nothing (whether the server had sent tickets is not in a capture: TLS 1.3 encrypts them)"
	case "no_psk_modes":
		// RFC 8446, Section 4.2.9.
		return "sent no psk_key_exchange_modes, so a TLS 1.3 server sends no tickets"
	case "nothing_tls12_issued":
		return "offered nothing to a TLS 1.2 server that had issued a session ID or ticket before"
	case "nothing_tls12":
		return "offered nothing to a TLS 1.2 server that had issued no session ID or ticket before"
	case "answer_not_seen":
		return "got an answer the capture does not show far enough to tell"
	case "no_hello":
		return "sent no readable ClientHello"
	}
	return codeWords(VerdictCode(r.Key), recs)
}

// codeWords says a verdict code in words that follow a count.
func codeWords(c VerdictCode, recs []*ConnRecord) string {
	switch c {
	case CodeClientSessionIDOnly:
		return "could resume only by session ID, which tlsresume does not do"
	case CodeClientTicketNotOurs:
		return "offered a ticket tlsresume cannot decrypt (another server's, or under a key that is gone)"
	case CodeClientTicketExpired:
		return "offered a ticket of tlsresume's older than 7 days"
	case CodeClientTicketRefused:
		return "offered a ticket crypto/tls did not resume (version or cipher differs)"
	case CodeClientResumptionRefused:
		return "offered a ticket tlsresume refused on purpose (--client-resumption)"
	case CodeClientTicketAgedOut:
		return "offered a ticket tlsresume refused on purpose as too old (--client-resumption expire-after)"
	case CodeClientTicketsDisabled:
		return "could not resume: tlsresume issues no tickets here, as " + ticketsOffWhy(recs)
	case CodeClientRejectedCert:
		return "rejected tlsresume's certificate"
	case CodeClientHandshakeFailed:
		return "failed the handshake"
	case CodeClientNoHello:
		return "sent no usable ClientHello"
	case CodeNotTLS:
		return "spoke no TLS"
	case CodePassthroughNotResumed:
		return "passed through: the server did a full handshake"
	case CodePassthroughUnknown:
		return "passed through: the server's answer was not seen far enough to tell"
	case CodeUpstreamCacheMiss:
		return "found nothing cached (evicted or flushed)"
	case CodeUpstreamCacheExpired:
		return "found the cached session expired"
	case CodeUpstreamCacheDropped:
		return "had the cached session discarded by crypto/tls"
	case CodeUpstreamCacheOff:
		return "had the upstream cache off"
	case CodeUpstreamNoTicket:
		return "met an origin that issues no tickets"
	case CodeUpstreamTicketRefused:
		return "had the cached session refused by the origin"
	case CodeUpstreamFailed:
		return "failed to dial or handshake"
	}
	if m := shortMeaning(c.Meaning()); m != "" {
		return "ended so: " + m
	}
	return "ended so"
}

// ticketsOffWhy says why tlsresume issued no tickets to a row's
// connections: a flag, or an origin that issues none, mirrored.
func ticketsOffWhy(recs []*ConnRecord) string {
	flag, origin := false, false
	for _, r := range recs {
		if r.Verdict.Client != CodeClientTicketsDisabled || r.Mirrored == nil {
			continue
		}
		if slices.Contains(r.Mirrored.Overrides, "client_tickets") {
			flag = true
		} else {
			origin = true
		}
	}
	switch {
	case flag && !origin:
		return "--client-tickets=false says"
	case origin && !flag:
		return "the origin issues none and tlsresume mirrors it"
	}
	return "--client-tickets=false says or the origin issues none"
}

// appleRow reports whether the row's hellos are likely Apple's stack, by
// KnownStacks: the commonest stack among them is Apple's.
func appleRow(recs []*ConnRecord) bool {
	apple, other := 0, 0
	for _, r := range recs {
		if r.ClientHello == nil {
			continue
		}
		if AppleStack(r.ClientHello.JA4) {
			apple++
		} else {
			other++
		}
	}
	return apple > 0 && apple >= other
}
