package inspect

// VerdictCode says in one word whether a connection resumed and, if not,
// why. A record's verdict carries one for each leg (client, upstream) and
// the most important of the two (code).
type VerdictCode string

// Verdict codes. Their meanings are VerdictCodeDocs; README.md's table is
// generated from that list.
const (
	CodeBothResumed  VerdictCode = "both_resumed"
	CodeFirstContact VerdictCode = "first_contact"
	CodeNotTLS       VerdictCode = "not_tls"

	CodePassthroughResumed      VerdictCode = "passthrough_resumed"
	CodePassthroughNotResumed   VerdictCode = "passthrough_not_resumed"
	CodePassthroughUnknown      VerdictCode = "passthrough_unknown"
	CodePassthroughRejectedCert VerdictCode = "passthrough_rejected_certificate"

	CodeQUICBlocked VerdictCode = "quic_blocked"

	CodeClientResumed           VerdictCode = "client_resumed"
	CodeClientFirstContact      VerdictCode = "client_first_contact"
	CodeClientOfferedNothing    VerdictCode = "client_offered_nothing"
	CodeClientSessionIDOnly     VerdictCode = "client_session_id_only"
	CodeClientTicketNotOurs     VerdictCode = "client_ticket_not_ours"
	CodeClientTicketExpired     VerdictCode = "client_ticket_expired"
	CodeClientTicketRefused     VerdictCode = "client_ticket_refused"
	CodeClientTicketsDisabled   VerdictCode = "client_tickets_disabled"
	CodeClientResumptionRefused VerdictCode = "client_resumption_refused"
	CodeClientTicketAgedOut     VerdictCode = "client_ticket_aged_out"
	CodeClientRejectedCert      VerdictCode = "client_rejected_certificate"
	CodeClientHandshakeFailed   VerdictCode = "client_handshake_failed"
	CodeClientNoHello           VerdictCode = "client_no_hello"

	CodeUpstreamResumed       VerdictCode = "upstream_resumed"
	CodeUpstreamFirstContact  VerdictCode = "upstream_first_contact"
	CodeUpstreamNewAddress    VerdictCode = "upstream_new_address"
	CodeUpstreamTicketPending VerdictCode = "upstream_ticket_pending"
	CodeUpstreamCacheMiss     VerdictCode = "upstream_cache_miss"
	CodeUpstreamCacheExpired  VerdictCode = "upstream_cache_expired"
	CodeUpstreamCacheDropped  VerdictCode = "upstream_cache_dropped"
	CodeUpstreamCacheOff      VerdictCode = "upstream_cache_off"
	CodeUpstreamNoTicket      VerdictCode = "upstream_no_ticket"
	CodeUpstreamTicketRefused VerdictCode = "upstream_ticket_refused"
	CodeUpstreamFailed        VerdictCode = "upstream_failed"
	CodeUpstreamNotAttempted  VerdictCode = "upstream_not_attempted"
	CodeUpstreamReused        VerdictCode = "upstream_reused"
)

// VerdictCodeDocs lists every verdict code with its meaning, in the order
// README.md's table shows them.
var VerdictCodeDocs = []CodeDoc{
	{string(CodeBothResumed), "the client resumed against tlsresume and tlsresume resumed against the origin"},
	{string(CodeFirstContact), "nothing to resume yet on either leg"},
	{string(CodeNotTLS), "the client's bytes were not TLS; relayed untouched"},
	{string(CodePassthroughResumed), "the bytes were passed through (`passthrough` says why) and the real server resumed the client, by its ServerHello"},
	{string(CodePassthroughNotResumed), "the bytes were passed through and the real server did a full handshake"},
	{string(CodePassthroughUnknown), "the bytes were passed through but the server's answer was not seen (or not enough of it to decide)"},
	{string(CodePassthroughRejectedCert), "the bytes were passed through and the client rejected the origin's own certificate (`client_alert` `unknown_ca`, …): passed through, it sees the origin's certificate, not tlsresume's, and trusts only tlsresume's CA; `verdict.fix` says what to do"},
	{string(CodeQUICBlocked), "a QUIC connection tlsresume dropped (`--quic block`) so that the app falls back to TCP, where it is intercepted: `quic_fallback.tcp_conn` names the TCP connection that followed, and that one's record says how it resumed"},
	{string(CodeClientResumed), "the client leg resumed (per-leg code)"},
	{string(CodeClientFirstContact), "the client offered nothing and has had no ticket from tlsresume yet"},
	{string(CodeClientOfferedNothing), "the client offered no ticket or PSK although tlsresume had issued this client (the same IP, program and TLS stack) a ticket before this connection started: a new process, a client that keeps no sessions, or one that had not yet read the ticket (the URLSession pattern, when the JA4 table says Apple's stack); the text names the connection that got the ticket"},
	{string(CodeClientSessionIDOnly), "the client resumes only by session ID (no session_ticket extension over TLS 1.2), which Go's TLS server never issues"},
	{string(CodeClientTicketNotOurs), "it offered a ticket/PSK tlsresume cannot decrypt (issued by another server, or under a key that is gone)"},
	{string(CodeClientTicketExpired), "it offered a ticket of ours older than 7 days"},
	{string(CodeClientTicketRefused), "it offered our ticket but crypto/tls did not resume (version or cipher differs)"},
	{string(CodeClientResumptionRefused), "it offered our ticket and tlsresume refused it on purpose (`--client-resumption refuse`): a full handshake followed, as with a server that lost its session cache"},
	{string(CodeClientTicketAgedOut), "it offered our ticket and tlsresume refused it on purpose because it was older than `--client-resumption expire-after=DURATION` (a cache boundary such as Apple's 10 minutes, crossed on demand)"},
	{string(CodeClientTicketsDisabled), "tlsresume issues no tickets on this connection (`--client-tickets=false`, or mirroring an origin that issues none)"},
	{string(CodeClientRejectedCert), "the client refused our certificate (alert `bad_certificate`, `unknown_ca`, …, or it closed without an alert right after our certificate: `closed_after_certificate`): it does not trust the tlsresume CA, or it pins certificates"},
	{string(CodeClientHandshakeFailed), "any other client handshake failure"},
	{string(CodeClientNoHello), "the connection ended without a usable ClientHello (truncated, malformed, silent, refused); `error` says which"},
	{string(CodeUpstreamResumed), "the upstream leg resumed (per-leg code)"},
	{string(CodeUpstreamFirstContact), "nothing cached for this origin yet"},
	{string(CodeUpstreamNewAddress), "first contact with this address of a known name: the name resolved to another address (DNS rotation, several A records), and sessions are kept per name + address + port, as Apple's are"},
	{string(CodeUpstreamTicketPending), "nothing cached yet, while another connection to this origin is still open: crypto/tls stores a TLS 1.3 ticket only when that connection reads its first response"},
	{string(CodeUpstreamCacheMiss), "the origin was seen before but nothing is cached (evicted or flushed)"},
	{string(CodeUpstreamCacheExpired), "the cached session was older than the TTL or the server's ticket lifetime"},
	{string(CodeUpstreamCacheDropped), "crypto/tls discarded the cached session (its certificate expired or no longer verifies)"},
	{string(CodeUpstreamCacheOff), "`--upstream-tickets=false`"},
	{string(CodeUpstreamNoTicket), "the origin issued no ticket on earlier connections (Go's client cannot resume by session ID)"},
	{string(CodeUpstreamTicketRefused), "a cached session was offered and the origin did a full handshake"},
	{string(CodeUpstreamFailed), "dialling or the upstream handshake failed"},
	{string(CodeUpstreamNotAttempted), "no upstream TLS (not TLS, or the client's hello was unreadable)"},
	{string(CodeUpstreamReused), "no upstream handshake of its own: `--upstream-reuse pool` carried its requests on an earlier connection's upstream connection (`reused_conn` names it)"},
}

// Family groups verdict codes by what a person should look at: "resumed",
// "first" (nothing to resume yet), "client" (the client did not resume),
// "upstream" (tlsresume could not resume the origin), "passthrough" or
// "failed".
func (c VerdictCode) Family() string {
	switch c {
	case CodeBothResumed, CodeClientResumed, CodeUpstreamResumed, CodePassthroughResumed, CodeUpstreamReused:
		return "resumed"
	case CodeFirstContact, CodeClientFirstContact, CodeUpstreamFirstContact, CodeUpstreamNewAddress, CodeUpstreamTicketPending:
		return "first"
	case CodePassthroughNotResumed, CodePassthroughUnknown, CodeQUICBlocked:
		return "passthrough"
	case CodeNotTLS, CodeClientRejectedCert, CodeClientHandshakeFailed, CodeClientNoHello, CodeUpstreamFailed, CodeUpstreamNotAttempted,
		CodePassthroughRejectedCert:
		return "failed"
	case CodeClientResumptionRefused, CodeClientTicketAgedOut:
		return "client"
	case CodeUpstreamCacheMiss, CodeUpstreamCacheExpired, CodeUpstreamCacheDropped, CodeUpstreamCacheOff, CodeUpstreamNoTicket, CodeUpstreamTicketRefused:
		return "upstream"
	}
	return "client"
}

// Meaning is the code's one line from VerdictCodeDocs ("" for an unknown
// code).
func (c VerdictCode) Meaning() string {
	for _, d := range VerdictCodeDocs {
		if d.Code == string(c) {
			return d.Meaning
		}
	}
	return ""
}
