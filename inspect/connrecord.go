package inspect

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// ConnRecord is one connection through the proxy: what the client offered
// (the Record fields), how its handshake with tlsresume went, how
// tlsresume's own upstream handshake went, and a verdict. One JSON object
// per line in the proxy's --log file; field names are a contract
// (README.md, "The proxy's record"). It is the one shape every reader
// decodes: a line of `inspect --format jsonl` decodes into it too, with the
// proxy's fields empty.
//
// Its free-text fields hold what peers sent (a User-Agent, a CONNECT
// target, an SNI, ALPN values, error texts that quote certificate names),
// so the proxy bounds each before it publishes a record (Capped): a value
// longer than its cap (MaxNameLen, MaxUserAgentLen, MaxTextLen,
// MaxFingerprintLen) keeps its first bytes and ends with the mark
// "…[cut: N bytes]", N being its full length; a list longer than
// MaxListLen keeps its first entries and ends with the entry
// "…[cut: N entries]". A record line then stays a few kilobytes whatever a
// client or an origin sends (its MaxRequests requests add at most about
// 20 KiB).
type ConnRecord struct {
	Record
	ID          string       `json:"id"`
	Target      string       `json:"target"` // host:port from CONNECT (or the original destination)
	ClientLeg   *ClientLeg   `json:"client_leg"`
	UpstreamLeg *UpstreamLeg `json:"upstream_leg"`
	Mirrored    *Mirrored    `json:"mirrored"`
	Passthrough string       `json:"passthrough,omitempty"` // why the bytes were passed through untouched
	// QUICFallback is set on a QUIC connection (transport "quic") that
	// tlsresume blocked (--quic block): none of its datagrams reached the
	// origin, so the app falls back to TCP, where tlsresume intercepts it.
	// It names the TCP connection that followed, when one did.
	QUICFallback *QUICFallback `json:"quic_fallback,omitempty"`
	// AfterQUIC names the blocked QUIC connection (quic_fallback) that this
	// TCP connection followed: the same device, to the same address, port
	// 443, within QUICFallbackWindow of the QUIC connection's last
	// datagram. The app fell back to TCP.
	AfterQUIC string `json:"after_quic,omitempty"`
	UserAgent string `json:"user_agent,omitempty"` // the first request's User-Agent, when HTTP was served; at most MaxUserAgentLen bytes, else cut and marked
	// Requests are the connection's first HTTP requests, at most
	// MaxRequests, in the order they were sent to the origin (HTTP/2
	// streams run at once), each with the origin's answer; bodies are never
	// kept. RequestCount counts every request relayed, those past
	// MaxRequests too. Both are empty when no HTTP was served (passed
	// through, relayed as bytes).
	Requests     []Request `json:"requests,omitempty"`
	RequestCount int       `json:"request_count,omitempty"`
	BytesUp      int64     `json:"bytes_up"`   // client → upstream, as read from the client (TLS records included)
	BytesDown    int64     `json:"bytes_down"` // upstream → client, as written to the client
	DurationMS   float64   `json:"duration_ms"`
	Verdict      Verdict   `json:"verdict"`
}

// QUICFallbackWindow is how long after a blocked QUIC connection's last
// datagram a TCP connection of the same device to the same address, port
// 443, is taken for the app's fallback to TCP (ConnRecord.QUICFallback,
// AfterQUIC). Apps fall back well within it: Chromium races TCP against
// QUIC it has not seen work (net/quic's "alternative job"), quic-go gives
// up a handshake after 5 seconds (HandshakeIdleTimeout).
const QUICFallbackWindow = 5 * time.Second

// QUICFallback is what became of a QUIC connection tlsresume blocked.
type QUICFallback struct {
	// Blocked: none of the connection's datagrams were relayed (--quic
	// block); they were dropped without an answer.
	Blocked bool `json:"blocked"`
	// TCPConn names the TCP connection the app fell back to: the first of
	// the same device to the same address, port 443, that arrived after
	// the QUIC connection began and within QUICFallbackWindow of its last
	// datagram. Empty: none did.
	TCPConn string `json:"tcp_conn,omitempty"`
	// AfterMS is the time from the QUIC connection's first datagram to the
	// TCP connection's arrival, in milliseconds (with TCPConn only).
	AfterMS float64 `json:"after_ms,omitempty"`
}

// ClientLeg is the client's handshake with tlsresume.
type ClientLeg struct {
	Version     string `json:"version"` // "1.3", "1.2", ...
	CipherSuite string `json:"cipher_suite"`
	ALPN        string `json:"alpn"`
	Resumed     bool   `json:"resumed"` // crypto/tls ConnectionState.DidResume
	TicketsSent int    `json:"tickets_sent"`
	// Ticket lineage: which earlier connection issued the ticket the client
	// offered, and how old it was; or why it could not be used.
	TicketFrom  string      `json:"ticket_from,omitempty"`
	TicketAgeMS int64       `json:"ticket_age_ms,omitempty"`
	Ticket      TicketState `json:"ticket"`
	// TicketKeyID and TicketKeyAgeMS name the key that decrypted the
	// client's ticket (8 hex digits of its SHA-256) and its age then.
	TicketKeyID    string `json:"ticket_key_id,omitempty"`
	TicketKeyAgeMS int64  `json:"ticket_key_age_ms,omitempty"`
	// RefusedBy is the --client-resumption rule that refused the client's
	// ticket on purpose (ticket "refused").
	RefusedBy   string  `json:"refused_by,omitempty"`
	HandshakeMS float64 `json:"handshake_ms"`
	Error       string  `json:"error,omitempty"`
	// StreamError is what broke the client's side after the handshake,
	// while relaying (a reset, a write that failed). Resumption facts stand.
	StreamError string `json:"stream_error,omitempty"`
	Alert       string `json:"alert,omitempty"` // the alert the client sent, when it rejected us
	// ClosedAfterCertificate: the client closed the handshake without an
	// alert after tlsresume's certificate went out (how some apps pin).
	ClosedAfterCertificate bool `json:"closed_after_certificate,omitempty"`
	// ClientCert: whether tlsresume asked the client for a certificate, and
	// what it presented (null when neither happened).
	ClientCert *ClientCert `json:"client_cert,omitempty"`
}

// ClientCert is a client certificate on one leg: whether the server side
// asked for one, whether one was presented, which, and, when the handshake
// resumed instead, the connection whose handshake the session's certificate
// comes from (no certificate is asked for on a resumption: seed 001, Apple
// Technical Q&A QA1727).
type ClientCert struct {
	Requested   bool   `json:"requested"`
	Presented   bool   `json:"presented"`
	Subject     string `json:"subject,omitempty"`
	SHA256      string `json:"sha256,omitempty"` // of the certificate, in hex
	FromSession string `json:"from_session,omitempty"`
}

// UpstreamLeg is tlsresume's own handshake with the real server.
type UpstreamLeg struct {
	Addr            string      `json:"addr"`        // what was dialled: the target host:port, or the original destination
	RemoteAddr      string      `json:"remote_addr"` // the ip:port the connection reached (the upstream cache's key, with sni)
	SNI             string      `json:"sni"`
	Version         string      `json:"version"`
	CipherSuite     string      `json:"cipher_suite"`
	ALPN            string      `json:"alpn"`
	Resumed         bool        `json:"resumed"`
	Cache           CacheResult `json:"cache"`
	Offered         Attempt     `json:"offered"` // what tlsresume offered the origin: psk, ticket or none
	SessionFrom     string      `json:"session_from,omitempty"`
	SessionAgeMS    int64       `json:"session_age_ms,omitempty"`
	TicketsReceived int         `json:"tickets_received"`
	Verified        bool        `json:"verified"`
	Insecure        bool        `json:"insecure,omitempty"` // --insecure-upstream was set
	HandshakeMS     float64     `json:"handshake_ms"`
	ExtraHandshakes int         `json:"extra_handshakes"` // further upstream connections made for this client connection
	Error           string      `json:"error,omitempty"`
	// Pooled: --upstream-reuse pool; this client connection made no
	// upstream handshake of its own at first (the leg's version, suite and
	// ALPN are the pool's last handshake with the origin, which the client
	// leg mirrored). ReusedConn names the earlier connection whose upstream
	// connection carried its first request, when not its own.
	Pooled     bool   `json:"pooled,omitempty"`
	ReusedConn string `json:"reused_conn,omitempty"`
	// StreamError is what broke the origin's side after the handshake,
	// while relaying (a reset mid-response, a request that could not be
	// sent). Resumption facts stand.
	StreamError string `json:"stream_error,omitempty"`
	// ClientCert: whether the origin asked tlsresume for a certificate, and
	// the identity tlsresume presented or resumed with.
	ClientCert *ClientCert `json:"client_cert,omitempty"`
	// Certificate is the origin's certificate as this upstream handshake
	// saw it (a resumed one: the certificate of the handshake that made the
	// session, which crypto/tls keeps in it); null when no certificate was
	// seen (the dial or the handshake failed before it, or a pooled
	// connection made no handshake of its own).
	Certificate *Certificate `json:"certificate,omitempty"`
	// Probe: this handshake was made for interception before tlsresume
	// learned that the client must be passed through (a TLS 1.2 origin, and
	// a client that resumes only by session ID); the origin saw it and the
	// upstream cache used it, but the client's own bytes then went to the
	// origin on a new connection (server_hello, passthrough).
	Probe bool `json:"probe,omitempty"`
}

// Certificate is an origin's certificate, as the upstream leg saw it.
type Certificate struct {
	Subject   string    `json:"subject"`    // the leaf's subject (RFC 2253 form, as Go prints it), at most MaxTextLen bytes
	Issuer    string    `json:"issuer"`     // the leaf's issuer, likewise
	Names     []string  `json:"names"`      // the leaf's DNS names and IP addresses (at most MaxListLen, each MaxNameLen bytes)
	NotBefore time.Time `json:"not_before"` // the leaf's validity
	NotAfter  time.Time `json:"not_after"`
	ChainLen  int       `json:"chain_len"` // certificates the origin sent, the leaf included
	// Verified: the chain verified for the name tlsresume asked for,
	// against the system roots and --upstream-ca's (as the leg's verified);
	// VerifyError says why not, in crypto/x509's words ("x509: certificate
	// signed by unknown authority"), with --insecure-upstream too.
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`
}

// MaxRequests is how many of a connection's requests its record keeps
// (ConnRecord.Requests).
const MaxRequests = 20

// Request is one HTTP request relayed on an intercepted connection and
// the origin's answer to it. Its text fields are what the client sent,
// each at most MaxNameLen bytes, else cut and marked.
type Request struct {
	Method    string `json:"method"`
	Authority string `json:"authority"` // the Host header (HTTP/1.1) or :authority (HTTP/2)
	// Path is the request's path, without its query, which may carry
	// secrets (tokens, keys).
	Path string `json:"path"`
	// Status is the origin's status code; 0 when it gave no answer (the
	// upstream leg's stream_error says why).
	Status int `json:"status"`
	// Bytes counts the response body's bytes relayed to the client, as
	// read from the origin (decoded from its chunks; not its headers).
	Bytes int64 `json:"bytes"`
	// MS is the time from sending the request to the origin's response
	// headers, in milliseconds.
	MS float64 `json:"ms"`
}

// Mirrored says what tlsresume copied from the origin into its answer to
// the client, so the client behaves as it would against the real server.
type Mirrored struct {
	MaxVersion string   `json:"max_version"` // highest version offered to the client
	ALPN       []string `json:"alpn"`        // protocols offered to the client, in preference order
	// Tickets: tlsresume issues the client tickets, as the origin does
	// (its TLS 1.2 handshake on this connection says whether it issued
	// one; else earlier connections to it do). A ticket of tlsresume's own
	// that the client offers is resumed either way (only
	// --client-resumption refuses one), and crypto/tls then renews it
	// (tickets_sent).
	Tickets bool     `json:"tickets"`
	Names   []string `json:"names"` // names on the leaf shown to the client
	// NamesLeftOut are names of the origin's certificate (or the SNI, or
	// the CONNECT host) that a leaf cannot carry, left off the leaf shown
	// to the client: not a host name or an IP address (a space, a byte
	// outside letters, digits, '-' and '_', an empty label, a '*' other
	// than a whole leftmost label, non-ASCII). Sorted; empty: none.
	NamesLeftOut []string `json:"names_left_out,omitempty"`
	Overrides    []string `json:"overrides,omitempty"`
	// From names the earlier connection whose upstream handshake the
	// client leg mirrored, when tlsresume answered the client while this
	// connection's own upstream handshake was still under way (it had
	// seen the origin answer the same offer before). Empty: the client leg
	// mirrored this connection's own upstream handshake.
	From string `json:"from,omitempty"`
	// Mismatch lists what this connection's own upstream handshake then
	// answered differently from what was mirrored: "max_version", "alpn",
	// "names", "client_cert" (the origin asked for a certificate the
	// client was not asked for). Only with From.
	Mismatch []string `json:"mismatch,omitempty"`
	// EarlyData is always false: tlsresume's tickets allow no 0-RTT data,
	// whatever the origin's allow, because Go's TLS server accepts none.
	EarlyData bool `json:"early_data"`
	// CipherSuite is always false: the client leg's cipher suite is
	// crypto/tls's choice among the client's, not the origin's (a TLS 1.3
	// ticket is bound to its suite's hash).
	CipherSuite bool `json:"cipher_suite"`
}

// Verdict says, in one code and one sentence, whether both legs resumed and
// if not why. Client and Upstream hold the per-leg codes.
type Verdict struct {
	Code     VerdictCode `json:"code"`
	Text     string      `json:"text"`
	Client   VerdictCode `json:"client"`
	Upstream VerdictCode `json:"upstream"`
	// Fix says what would fix a failure, when tlsresume can tell: a flag
	// or a step, in one sentence ("the origin's certificate is signed by a
	// CA tlsresume does not trust: give that CA with --upstream-ca
	// FILE.pem, or skip verification with --insecure-upstream"). Empty
	// when nothing failed or nothing is known to fix it.
	Fix string `json:"fix,omitempty"`
}

// Caps on a ConnRecord's free-text fields (Capped). None cuts what a
// well-behaved peer sends: they bound what a hostile one can make a record,
// the console and the live view hold.
const (
	// MaxNameLen bounds names and addresses: the SNI, the target, addresses,
	// ALPN values and the leaf's names (a DNS name is at most 253 bytes, an
	// ALPN value at most 255).
	MaxNameLen = 300
	// MaxUserAgentLen bounds the User-Agent (browsers send 100–250 bytes).
	MaxUserAgentLen = 512
	// MaxTextLen bounds error texts, reasons, the verdict's text and
	// certificate subjects (an x509 error lists every name of the
	// certificate it rejects).
	MaxTextLen = 1024
	// MaxFingerprintLen bounds the JA3 and JA4_r strings, which list every
	// value of a hello (a real one makes a few hundred bytes).
	MaxFingerprintLen = 4096
	// MaxListLen bounds the entries of a list of names (ALPN, the leaf's
	// names).
	MaxListLen = 64
)

// Cut returns s when it is at most limit bytes long, else its first bytes
// (whole UTF-8 characters) and the mark "…[cut: N bytes]", N being len(s),
// in at most limit bytes all told: a cut value is never cut again.
func Cut(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	mark := fmt.Sprintf("…[cut: %d bytes]", len(s))
	keep := max(0, limit-len(mark))
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + mark // a new string: the long one is not kept alive
}

// cutList returns vs with each entry cut to maxLen and, past MaxListLen
// entries, its first entries and the entry "…[cut: N entries]"; changed
// says whether anything was cut (else vs itself is returned).
func cutList(vs []string, maxLen int) (out []string, changed bool) {
	n := len(vs)
	if n > MaxListLen {
		n = MaxListLen - 1
		changed = true
	}
	for _, v := range vs[:n] {
		changed = changed || len(v) > maxLen
	}
	if !changed {
		return vs, false
	}
	out = make([]string, 0, n+1)
	for _, v := range vs[:n] {
		out = append(out, Cut(v, maxLen))
	}
	if n < len(vs) {
		out = append(out, fmt.Sprintf("…[cut: %d entries]", len(vs)))
	}
	return out, true
}

// capper cuts strings and lists, noting whether it cut anything.
type capper struct{ changed bool }

func (c *capper) str(p *string, limit int) {
	if len(*p) > limit {
		*p, c.changed = Cut(*p, limit), true
	}
}

// ms rounds milliseconds to microseconds (roundMS).
func (c *capper) ms(p *float64) {
	if r := roundMS(*p); r != *p {
		*p, c.changed = r, true
	}
}

func (c *capper) list(p *[]string, maxLen int) {
	if out, changed := cutList(*p, maxLen); changed {
		*p, c.changed = out, true
	}
}

// Capped returns r with every free-text field within its cap, and its
// durations (duration_ms, each leg's handshake_ms) at microseconds, as
// its JSON shows them (a sum of durations is 2.1029999999999998 in
// float64, 2.103 in the record), so a published record equals its log
// line read back. It returns r itself when nothing needed it, else a
// copy: neither r nor anything it points to is changed, for a published
// record is shared by its readers.
func (r *ConnRecord) Capped() *ConnRecord {
	out := *r
	var c capper
	c.ms(&out.DurationMS)
	for _, f := range []struct {
		p     *string
		limit int
	}{
		{&out.ClientAddr, MaxNameLen}, {&out.ServerAddr, MaxNameLen}, {&out.SNI, MaxNameLen},
		{&out.Device, MaxNameLen}, {&out.DNSName, MaxNameLen},
		{&out.Target, MaxNameLen}, {&out.UserAgent, MaxUserAgentLen},
		{&out.Error, MaxTextLen}, {&out.Passthrough, MaxTextLen}, {&out.Verdict.Text, MaxTextLen}, {&out.Verdict.Fix, MaxTextLen},
	} {
		c.str(f.p, f.limit)
	}
	out.ClientHello = cappedHello(out.ClientHello, &c)
	out.ServerHello = cappedServerHello(out.ServerHello, &c)
	out.ClientLeg = cappedClientLeg(out.ClientLeg, &c)
	out.UpstreamLeg = cappedUpstreamLeg(out.UpstreamLeg, &c)
	out.Mirrored = cappedMirrored(out.Mirrored, &c)
	out.Requests = cappedRequests(out.Requests, &c)
	if !c.changed {
		return r
	}
	return &out
}

// The capped* functions return their argument itself when nothing in it is
// too long, else a capped copy, and note a cut in outer.

func cappedHello(h *ClientHelloRecord, outer *capper) *ClientHelloRecord {
	if h == nil {
		return nil
	}
	out := *h
	var c capper
	c.list(&out.ALPN, MaxNameLen)
	c.str(&out.JA3, MaxFingerprintLen)
	c.str(&out.JA4R, MaxFingerprintLen)
	return pick(h, &out, c, outer)
}

func cappedServerHello(h *ServerHelloRecord, outer *capper) *ServerHelloRecord {
	if h == nil {
		return nil
	}
	out := *h
	var c capper
	c.str(&out.ALPN, MaxNameLen)
	return pick(h, &out, c, outer)
}

func cappedClientLeg(l *ClientLeg, outer *capper) *ClientLeg {
	if l == nil {
		return nil
	}
	out := *l
	var c capper
	c.ms(&out.HandshakeMS)
	c.str(&out.ALPN, MaxNameLen)
	c.str(&out.Error, MaxTextLen)
	c.str(&out.StreamError, MaxTextLen)
	c.str(&out.Alert, MaxNameLen)
	out.ClientCert = cappedClientCert(out.ClientCert, &c)
	return pick(l, &out, c, outer)
}

func cappedUpstreamLeg(l *UpstreamLeg, outer *capper) *UpstreamLeg {
	if l == nil {
		return nil
	}
	out := *l
	var c capper
	c.ms(&out.HandshakeMS)
	c.str(&out.Addr, MaxNameLen)
	c.str(&out.RemoteAddr, MaxNameLen)
	c.str(&out.SNI, MaxNameLen)
	c.str(&out.ALPN, MaxNameLen)
	c.str(&out.Error, MaxTextLen)
	c.str(&out.StreamError, MaxTextLen)
	out.ClientCert = cappedClientCert(out.ClientCert, &c)
	out.Certificate = cappedCertificate(out.Certificate, &c)
	return pick(l, &out, c, outer)
}

func cappedCertificate(cert *Certificate, outer *capper) *Certificate {
	if cert == nil {
		return nil
	}
	out := *cert
	var c capper
	c.str(&out.Subject, MaxTextLen)
	c.str(&out.Issuer, MaxTextLen)
	c.str(&out.VerifyError, MaxTextLen)
	c.list(&out.Names, MaxNameLen)
	return pick(cert, &out, c, outer)
}

// cappedRequests returns rs itself when nothing in it is too long, else a
// capped copy.
func cappedRequests(rs []Request, outer *capper) []Request {
	var out []Request
	for i := range rs {
		r := rs[i]
		var c capper
		c.str(&r.Method, MaxNameLen)
		c.str(&r.Authority, MaxNameLen)
		c.str(&r.Path, MaxNameLen)
		if !c.changed {
			continue
		}
		if out == nil {
			out = append([]Request(nil), rs...)
		}
		out[i] = r
	}
	if out == nil {
		return rs
	}
	outer.changed = true
	return out
}

func cappedClientCert(cc *ClientCert, outer *capper) *ClientCert {
	if cc == nil {
		return nil
	}
	out := *cc
	var c capper
	c.str(&out.Subject, MaxTextLen)
	return pick(cc, &out, c, outer)
}

func cappedMirrored(m *Mirrored, outer *capper) *Mirrored {
	if m == nil {
		return nil
	}
	out := *m
	var c capper
	c.list(&out.ALPN, MaxNameLen)
	c.list(&out.Names, MaxNameLen)
	c.list(&out.NamesLeftOut, MaxNameLen)
	return pick(m, &out, c, outer)
}

// pick returns capped when c cut something (and tells outer), else orig.
func pick[T any](orig, capped *T, c capper, outer *capper) *T {
	if !c.changed {
		return orig
	}
	outer.changed = true
	return capped
}
