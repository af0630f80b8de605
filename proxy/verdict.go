package proxy

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// verdictFacts are what the verdict needs beyond the record itself: what
// the proxy remembers of earlier connections (see memory).
type verdictFacts struct {
	// ticketBefore is the connection that got the latest ticket tlsresume
	// issued this client (IP, program and TLS stack) for this host before
	// this connection's hello arrived, finished or not; or "".
	ticketBefore      string
	ticketsDisabled   bool // we issued no tickets on this connection (flag or mirrored origin)
	originSeen        bool // an earlier upstream handshake to this name + address completed
	originIssuedNoTkt bool // earlier handshakes to this name + address received no ticket
	originOpen        bool // an earlier upstream connection to this name + address was still open
	nameSeen          bool // an earlier upstream handshake to this name, at another address, completed
	notTLS            bool // the connection was not TLS and was relayed untouched
	tlsToProxy        bool // the client spoke TLS to the proxy port itself (errTLSToProxy)
}

// decide is the verdict on a finished record: each leg's code and words,
// the most important code of the two, and what would fix a failure.
func decide(r *inspect.ConnRecord, f verdictFacts) inspect.Verdict {
	v := decideCodes(r, f)
	v.Fix = fixOf(r, v, f).full
	return v
}

// decideCodes is the verdict's codes and words.
func decideCodes(r *inspect.ConnRecord, f verdictFacts) inspect.Verdict {
	if fb := r.QUICFallback; fb != nil && fb.Blocked {
		return decideQUICBlocked(r)
	}
	if r.Passthrough != "" {
		return decidePassthrough(r)
	}
	cc, ct := clientVerdict(r, f)
	uc, ut := upstreamVerdict(r, f)
	v := inspect.Verdict{Client: cc, Upstream: uc}
	switch {
	case cc == inspect.CodeNotTLS || cc == inspect.CodeClientNoHello:
		v.Code, v.Text = cc, ct
		return v
	case uc == inspect.CodeUpstreamFailed:
		v.Code = uc
	case cc == inspect.CodeClientRejectedCert, cc == inspect.CodeClientHandshakeFailed:
		v.Code = cc
	case cc == inspect.CodeClientResumed && uc == inspect.CodeUpstreamResumed:
		v.Code = inspect.CodeBothResumed
	case cc == inspect.CodeClientFirstContact && uc == inspect.CodeUpstreamFirstContact:
		v.Code = inspect.CodeFirstContact
	case cc != inspect.CodeClientResumed:
		v.Code = cc
	default:
		v.Code = uc
	}
	v.Text = "client: " + ct + "; upstream: " + ut
	if w := certWords(r.ClientLeg, r.UpstreamLeg); w != "" {
		v.Text += "; " + w
	}
	return v
}

// decidePassthrough: tlsresume relayed the bytes, so the verdict is what the
// real server did with the client's offer, read from its ServerHello.
func decidePassthrough(r *inspect.ConnRecord) inspect.Verdict {
	v := inspect.Verdict{Upstream: inspect.CodeUpstreamNotAttempted}
	sh := r.ServerHello
	switch {
	case isCertRejection(r.ClientAlert):
		v.Code, v.Client = inspect.CodePassthroughRejectedCert, inspect.CodePassthroughRejectedCert
		v.Text = "passed through (" + r.Passthrough + "); the client rejected the origin's own certificate (alert " + r.ClientAlert +
			"): passed through, it sees the origin's certificate, not tlsresume's, and it does not trust the CA that signed it"
		return v
	case sh == nil || !sh.Complete:
		v.Code = inspect.CodePassthroughUnknown
	case sh.Resumed:
		v.Code = inspect.CodePassthroughResumed
	default:
		v.Code = inspect.CodePassthroughNotResumed
	}
	v.Client = v.Code
	v.Text = "passed through (" + r.Passthrough + "); " + inspect.Explain(&r.Record)
	return v
}

// decideQUICBlocked: tlsresume dropped the QUIC connection (--quic block),
// so nothing was resumed on it; the TCP connection the app fell back to,
// when one followed, has a record and a verdict of its own.
func decideQUICBlocked(r *inspect.ConnRecord) inspect.Verdict {
	v := inspect.Verdict{Code: inspect.CodeQUICBlocked, Client: inspect.CodeQUICBlocked, Upstream: inspect.CodeUpstreamNotAttempted}
	var b strings.Builder
	b.WriteString("QUIC blocked (--quic block): the app falls back to TCP")
	if fb := r.QUICFallback; fb.TCPConn != "" {
		fmt.Fprintf(&b, "; it did: %s, %s after this connection's first packet", fb.TCPConn, ageWords(int64(fb.AfterMS)))
	} else {
		fmt.Fprintf(&b, "; no TCP connection of this device to %s port 443 followed within %v", hostOf(r.Target), inspect.QUICFallbackWindow)
	}
	if ch := r.ClientHello; ch != nil {
		b.WriteString("; its QUIC hello offered " + offerWords(ch))
		if r.EarlyDataSent {
			b.WriteString(" and sent 0-RTT data")
		}
	}
	v.Text = b.String()
	return v
}

// hostOf is the host of a host:port, or all of it.
func hostOf(hostport string) string {
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		return host
	}
	return hostport
}

func clientVerdict(r *inspect.ConnRecord, f verdictFacts) (inspect.VerdictCode, string) {
	ch, leg := r.ClientHello, r.ClientLeg
	switch {
	case ch == nil && f.notTLS:
		return inspect.CodeNotTLS, "not TLS: relayed untouched"
	case ch == nil:
		return inspect.CodeClientNoHello, "no usable ClientHello: " + r.Error
	case leg == nil:
		return inspect.CodeClientHandshakeFailed, "no handshake with tlsresume"
	case leg.Error != "" && isCertRejection(leg.Alert):
		return inspect.CodeClientRejectedCert, fmt.Sprintf("rejected our certificate (alert %s): it does not trust the tlsresume CA, or it pins certificates", leg.Alert)
	case leg.Error != "" && leg.ClosedAfterCertificate:
		return inspect.CodeClientRejectedCert, "closed the handshake without an alert right after our certificate: it pins certificates, or does not trust the tlsresume CA"
	case leg.Error != "":
		return inspect.CodeClientHandshakeFailed, "handshake failed: " + leg.Error
	case leg.Resumed:
		s := "offered " + offerWords(ch) + " → RESUMED"
		if leg.TicketFrom != "" {
			s += fmt.Sprintf(" (ticket from %s, %s old)", leg.TicketFrom, ageWords(leg.TicketAgeMS))
		}
		return inspect.CodeClientResumed, s
	}
	switch ch.Attempt {
	case inspect.AttemptPSK, inspect.AttemptTicket:
		switch leg.Ticket {
		case inspect.TicketNotOurs:
			return inspect.CodeClientTicketNotOurs, "offered " + offerWords(ch) + " that tlsresume cannot decrypt (issued by another server or under a ticket key it no longer has)"
		case inspect.TicketExpired:
			return inspect.CodeClientTicketExpired, fmt.Sprintf("offered %s from %s, %s old: expired", offerWords(ch), leg.TicketFrom, ageWords(leg.TicketAgeMS))
		case inspect.TicketRefused:
			code := inspect.CodeClientResumptionRefused
			if strings.Contains(leg.RefusedBy, "expire-after") {
				code = inspect.CodeClientTicketAgedOut
			}
			return code, fmt.Sprintf("offered %s from %s, %s old: refused on purpose by %s, so a full handshake followed", offerWords(ch), leg.TicketFrom, ageWords(leg.TicketAgeMS), leg.RefusedBy)
		case inspect.TicketDisabled:
			return inspect.CodeClientTicketsDisabled, "offered " + offerWords(ch) + " but tlsresume accepts no tickets on this connection"
		}
		return inspect.CodeClientTicketRefused, "offered " + offerWords(ch) + " but it was not accepted (version or cipher differs from the ticket's)"
	case inspect.AttemptSessionID:
		return inspect.CodeClientSessionIDOnly, sessionIDOnlyWords
	}
	if leg.Version != "1.3" && !ch.SessionTicket.Offered {
		// No session_ticket extension at all: over TLS 1.2 this client can
		// resume only by session ID (RFC 5246, Section 7.4.1.2), and Go's TLS
		// server never issues one (crypto/tls/handshake_server.go).
		return inspect.CodeClientSessionIDOnly, sessionIDOnlyWords
	}
	if f.ticketsDisabled {
		return inspect.CodeClientTicketsDisabled, "offered nothing to resume, and tlsresume issues no tickets on this connection" + ticketsOffWhy(r.Mirrored)
	}
	if f.ticketBefore != "" && !ch.SessionTicket.Offered && !ch.PreSharedKey.Offered {
		return inspect.CodeClientOfferedNothing, "offered nothing (no session_ticket, no pre_shared_key) although this program was given a ticket on " + f.ticketBefore + ": " + inspect.OfferedNothingCause(ch.JA4)
	}
	if f.ticketBefore != "" {
		return inspect.CodeClientOfferedNothing, "offered no ticket (it asked for a new one) although this program was given one on " + f.ticketBefore + ": " + inspect.OfferedNothingCause(ch.JA4)
	}
	return inspect.CodeClientFirstContact, "first contact: nothing to resume yet"
}

func upstreamVerdict(r *inspect.ConnRecord, f verdictFacts) (inspect.VerdictCode, string) {
	u := r.UpstreamLeg
	switch {
	case r.ClientHello == nil:
		return inspect.CodeUpstreamNotAttempted, "not TLS: relayed untouched"
	case u == nil:
		return inspect.CodeUpstreamNotAttempted, "not dialled"
	case u.Error != "":
		return inspect.CodeUpstreamFailed, "failed: " + u.Error
	case u.ReusedConn == unknownOwner:
		return inspect.CodeUpstreamReused, "no upstream handshake of its own: --upstream-reuse pool carried its first request on an earlier connection's upstream connection (which one is no longer known)"
	case u.ReusedConn != "":
		return inspect.CodeUpstreamReused, "no upstream handshake of its own: --upstream-reuse pool carried its first request on the upstream connection " + u.ReusedConn + " made"
	case u.Pooled && u.Cache == inspect.CacheNotAsked && !u.Resumed:
		return inspect.CodeUpstreamNotAttempted, "pooled (--upstream-reuse pool): no request needed an upstream connection"
	case u.Resumed:
		return inspect.CodeUpstreamResumed, fmt.Sprintf("cache hit (session from %s, %s old) → RESUMED", u.SessionFrom, ageWords(u.SessionAgeMS))
	case u.Cache == inspect.CacheOff:
		return inspect.CodeUpstreamCacheOff, "upstream session cache is off"
	case u.Cache == inspect.CacheHit:
		return inspect.CodeUpstreamTicketRefused, "offered a cached " + string(u.Offered) + " but the server did a full handshake"
	case u.Cache == inspect.CacheDropped:
		return inspect.CodeUpstreamCacheDropped, fmt.Sprintf("crypto/tls discarded the cached session (%s old): its certificate expired or no longer verifies", ageWords(u.SessionAgeMS))
	case u.Cache == inspect.CacheExpired:
		return inspect.CodeUpstreamCacheExpired, fmt.Sprintf("cached session expired (%s old)", ageWords(u.SessionAgeMS))
	case f.originIssuedNoTkt:
		if u.Version == "1.2" {
			return inspect.CodeUpstreamNoTicket, "server issued no ticket earlier (Go's client resumes TLS 1.2 only by ticket, never by session ID)"
		}
		return inspect.CodeUpstreamNoTicket, "server issued no ticket earlier: nothing to resume with"
	case f.originSeen:
		return inspect.CodeUpstreamCacheMiss, "cache miss (evicted or flushed)"
	case f.originOpen:
		return inspect.CodeUpstreamTicketPending, "nothing cached yet: another connection to this origin was still open without a ticket stored (crypto/tls reads a TLS 1.3 ticket only with the first response)"
	case f.nameSeen:
		return inspect.CodeUpstreamNewAddress, "first contact with this address (" + u.RemoteAddr + ") of a known name: sessions are kept per name + address + port, so a name that resolves to another address starts afresh"
	}
	return inspect.CodeUpstreamFirstContact, "first contact: nothing cached yet"
}

// ticketsOffWhy says why the client leg issued no tickets: a flag, or the
// origin, mirrored.
func ticketsOffWhy(m *inspect.Mirrored) string {
	if m == nil || slices.Contains(m.Overrides, "client_tickets") {
		return " (--client-tickets=false)"
	}
	return ": the origin issues none, and tlsresume mirrors it (against the origin, a TLS 1.2 client resumes by session ID, which Go's TLS server cannot offer)"
}

const sessionIDOnlyWords = "offers no session_ticket: over TLS 1.2 it can resume only by session ID, which Go's TLS server (tlsresume) never issues, so it cannot resume here (a server with a session cache could resume it)"

// rejectedCertificate: the client refused tlsresume's certificate, by alert
// or by closing right after it.
func rejectedCertificate(leg *inspect.ClientLeg) bool {
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
	case ms < 120*60_000:
		return fmt.Sprintf("%.1fmin", float64(ms)/60_000)
	case ms < 48*3600_000:
		return fmt.Sprintf("%.1fh", float64(ms)/3600_000)
	}
	return fmt.Sprintf("%.1f days", float64(ms)/(24*3600_000))
}
