package proxy

import (
	"fmt"

	"github.com/tlsresume/tlsresume/inspect"
)

// Verdict codes. Each is documented in README.md ("Verdict codes").
const (
	CodeBothResumed  = "both_resumed"
	CodeFirstContact = "first_contact"
	CodeNotTLS       = "not_tls"

	CodeClientResumed         = "client_resumed"
	CodeClientFirstContact    = "client_first_contact"
	CodeClientOfferedNothing  = "client_offered_nothing"
	CodeClientSessionIDOnly   = "client_session_id_only"
	CodeClientTicketNotOurs   = "client_ticket_not_ours"
	CodeClientTicketExpired   = "client_ticket_expired"
	CodeClientTicketRefused   = "client_ticket_refused"
	CodeClientTicketsDisabled = "client_tickets_disabled"
	CodeClientRejectedCert    = "client_rejected_certificate"
	CodeClientHandshakeFailed = "client_handshake_failed"
	CodeClientNoHello         = "client_no_hello"
	CodeUpstreamResumed       = "upstream_resumed"
	CodeUpstreamFirstContact  = "upstream_first_contact"
	CodeUpstreamCacheMiss     = "upstream_cache_miss"
	CodeUpstreamCacheExpired  = "upstream_cache_expired"
	CodeUpstreamCacheOff      = "upstream_cache_off"
	CodeUpstreamCacheDropped  = "upstream_cache_dropped"
	CodeUpstreamNoTicket      = "upstream_no_ticket"
	CodeUpstreamTicketRefused = "upstream_ticket_refused"
	CodeUpstreamFailed        = "upstream_failed"
	CodeUpstreamNotAttempted  = "upstream_not_attempted"
	CodeUpstreamTicketPending = "upstream_ticket_pending"

	CodePassthroughResumed    = "passthrough_resumed"
	CodePassthroughNotResumed = "passthrough_not_resumed"
	CodePassthroughUnknown    = "passthrough_unknown"
)

// verdictFacts are what the verdict needs beyond the record itself.
type verdictFacts struct {
	clientHadTicket   bool // an earlier connection from this client to this host got a ticket from us
	ticketsDisabled   bool // we issued no tickets on this connection (flag or mirrored origin)
	originSeen        bool // an earlier upstream handshake to this origin completed
	originIssuedNoTkt bool // earlier handshakes to this origin received no ticket
	originOpen        bool // an earlier upstream connection to this origin was still open
	tunnelled         bool // the connection was not TLS and was relayed untouched
}

// decide fills r.Verdict from the record's facts.
func decide(r *ConnRecord, f verdictFacts) {
	if r.Passthrough != "" {
		decidePassthrough(r)
		return
	}
	cc, ct := clientVerdict(r, f)
	uc, ut := upstreamVerdict(r, f)
	v := Verdict{Client: cc, Upstream: uc}
	switch {
	case cc == CodeNotTLS || cc == CodeClientNoHello:
		v.Code, v.Text = cc, ct
		r.Verdict = v
		return
	case cc == CodeClientRejectedCert, uc == CodeUpstreamFailed, cc == CodeClientHandshakeFailed:
		v.Code = cc
		if uc == CodeUpstreamFailed {
			v.Code = uc
		}
	case cc == CodeClientResumed && uc == CodeUpstreamResumed:
		v.Code = CodeBothResumed
	case cc == CodeClientFirstContact && uc == CodeUpstreamFirstContact:
		v.Code = CodeFirstContact
	case cc != CodeClientResumed:
		v.Code = cc
	default:
		v.Code = uc
	}
	v.Text = "client: " + ct + "; upstream: " + ut
	r.Verdict = v
}

// decidePassthrough: tlsresume relayed the bytes, so the verdict is what the
// real server did with the client's offer, read from its ServerHello.
func decidePassthrough(r *ConnRecord) {
	v := Verdict{Upstream: CodeUpstreamNotAttempted}
	sh := r.ServerHello
	switch {
	case sh == nil || !sh.Complete:
		v.Code = CodePassthroughUnknown
	case sh.Resumed:
		v.Code = CodePassthroughResumed
	default:
		v.Code = CodePassthroughNotResumed
	}
	v.Client = v.Code
	v.Text = "passed through (" + r.Passthrough + "); " + inspect.Explain(&r.Record)
	r.Verdict = v
}

func clientVerdict(r *ConnRecord, f verdictFacts) (string, string) {
	ch, leg := r.ClientHello, r.ClientLeg
	switch {
	case ch == nil && f.tunnelled:
		return CodeNotTLS, "not TLS: tunnelled untouched"
	case ch == nil:
		return CodeClientNoHello, "no usable ClientHello: " + r.Error
	case leg == nil:
		return CodeClientHandshakeFailed, "no handshake with tlsresume"
	case leg.Error != "" && isCertRejection(leg.Alert):
		return CodeClientRejectedCert, fmt.Sprintf("rejected our certificate (alert %s): it does not trust the tlsresume CA, or it pins certificates", leg.Alert)
	case leg.Error != "" && leg.ClosedAfterCertificate:
		return CodeClientRejectedCert, "closed the handshake without an alert right after our certificate: it pins certificates, or does not trust the tlsresume CA"
	case leg.Error != "":
		return CodeClientHandshakeFailed, "handshake failed: " + leg.Error
	case leg.Resumed:
		s := "offered " + offerWords(ch) + " → RESUMED"
		if leg.TicketFrom != "" {
			s += fmt.Sprintf(" (ticket from %s, %s old)", leg.TicketFrom, ageWords(leg.TicketAgeMS))
		}
		return CodeClientResumed, s
	}
	switch ch.Attempt {
	case inspect.AttemptPSK, inspect.AttemptTicket:
		switch leg.Ticket {
		case "not_ours":
			return CodeClientTicketNotOurs, "offered " + offerWords(ch) + " that tlsresume cannot decrypt (issued by another server or under a ticket key it no longer has)"
		case "expired":
			return CodeClientTicketExpired, fmt.Sprintf("offered %s from %s, %s old: expired", offerWords(ch), leg.TicketFrom, ageWords(leg.TicketAgeMS))
		case "disabled":
			return CodeClientTicketsDisabled, "offered " + offerWords(ch) + " but tlsresume accepts no tickets on this connection"
		}
		return CodeClientTicketRefused, "offered " + offerWords(ch) + " but it was not accepted (version or cipher differs from the ticket's)"
	case inspect.AttemptSessionID:
		return CodeClientSessionIDOnly, sessionIDOnlyWords
	}
	if leg.Version != "1.3" && !ch.SessionTicket.Offered {
		// No session_ticket extension at all: over TLS 1.2 this client can
		// resume only by session ID (RFC 5246, Section 7.4.1.2), and Go's TLS
		// server never issues one (crypto/tls/handshake_server.go).
		return CodeClientSessionIDOnly, sessionIDOnlyWords
	}
	if f.ticketsDisabled {
		return CodeClientTicketsDisabled, "offered nothing to resume, and tlsresume issues no tickets on this connection"
	}
	if !ch.SessionTicket.Offered && !ch.PreSharedKey.Offered && f.clientHadTicket {
		return CodeClientOfferedNothing, "no session_ticket and no pre_shared_key although tlsresume issued it a ticket before: this client does not resume (the URLSession pattern)"
	}
	if f.clientHadTicket {
		return CodeClientOfferedNothing, "offered no ticket although tlsresume issued it one before"
	}
	return CodeClientFirstContact, "first contact: nothing to resume yet"
}

func upstreamVerdict(r *ConnRecord, f verdictFacts) (string, string) {
	u := r.UpstreamLeg
	switch {
	case r.ClientHello == nil:
		return CodeUpstreamNotAttempted, "tunnelled"
	case u == nil:
		return CodeUpstreamNotAttempted, "not dialled"
	case u.Error != "":
		return CodeUpstreamFailed, "handshake failed: " + u.Error
	case u.Resumed:
		return CodeUpstreamResumed, fmt.Sprintf("cache hit (session from %s, %s old) → RESUMED", u.SessionFrom, ageWords(u.SessionAgeMS))
	case u.Cache == "off":
		return CodeUpstreamCacheOff, "upstream session cache is off"
	case u.Cache == "hit":
		return CodeUpstreamTicketRefused, "offered a cached " + u.Offered + " but the server did a full handshake"
	case u.Cache == "dropped":
		return CodeUpstreamCacheDropped, fmt.Sprintf("crypto/tls discarded the cached session (%s old): its certificate expired or no longer verifies", ageWords(u.SessionAgeMS))
	case u.Cache == "expired":
		return CodeUpstreamCacheExpired, fmt.Sprintf("cached session expired (%s old)", ageWords(u.SessionAgeMS))
	case f.originIssuedNoTkt:
		return CodeUpstreamNoTicket, "server issued no ticket earlier (Go's client resumes TLS 1.2 only by ticket, never by session ID)"
	case f.originSeen:
		return CodeUpstreamCacheMiss, "cache miss (evicted or flushed)"
	case f.originOpen:
		return CodeUpstreamTicketPending, "nothing cached yet: another connection to this origin was still open without a ticket stored (crypto/tls reads a TLS 1.3 ticket only with the first response)"
	}
	return CodeUpstreamFirstContact, "first contact: nothing cached yet"
}

const sessionIDOnlyWords = "offers no session_ticket: over TLS 1.2 it can resume only by session ID, which Go's TLS server (tlsresume) never issues, so it cannot resume here (a server with a session cache could resume it)"

// rejectedCertificate: the client refused tlsresume's certificate, by alert
// or by closing right after it.
func rejectedCertificate(leg *ClientLeg) bool {
	return leg != nil && (isCertRejection(leg.Alert) || leg.ClosedAfterCertificate)
}

func isCertRejection(alert string) bool {
	switch alert {
	case "bad_certificate", "unknown_ca", "certificate_unknown", "unsupported_certificate", "access_denied":
		return true
	}
	return false
}

func offerWords(ch *inspect.ClientHelloRecord) string {
	switch ch.Attempt {
	case inspect.AttemptPSK:
		return fmt.Sprintf("psk(%d)", len(ch.PreSharedKey.Identities))
	case inspect.AttemptTicket:
		return fmt.Sprintf("ticket(%d bytes)", ch.SessionTicket.Len)
	case inspect.AttemptSessionID:
		return "session ID only"
	}
	return "nothing"
}

func ageWords(ms int64) string {
	switch {
	case ms < 1000:
		return fmt.Sprintf("%dms", ms)
	case ms < 120_000:
		return fmt.Sprintf("%.1fs", float64(ms)/1000)
	}
	return fmt.Sprintf("%.1fmin", float64(ms)/60000)
}
