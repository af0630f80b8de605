package proxy

import (
	"net"
	"strings"
	"unicode/utf8"

	"github.com/tlsresume/tlsresume/inspect"
)

// The console's line for a connection, for a person scanning a terminal
// of 120 columns: who (the connection, its program and IP), where (host
// and port), what the client offered, how each leg went, the verdict, and
// on a failure what fixes it and, when that does not say it all, the
// error. At most about 200 characters whatever a peer sends: each part is
// cut to its share. Every other fact is in the record (--log, the live
// view) and, with --log-json, in the line's fields.
//
//	c2 curl/8.5.0 127.0.0.1 → localhost:9443  offered psk(1)  client resumed (c1's ticket)  upstream resumed (c1's session)  = both_resumed
const (
	consoleProgramLen = 24
	consoleHostLen    = 48
	consoleErrorLen   = 72
)

// recordLine is r's console line; program is its program's name.
func recordLine(r *inspect.ConnRecord, program string) string {
	var b strings.Builder
	b.Grow(200)
	b.WriteString(r.ID)
	if program != "" {
		b.WriteByte(' ')
		b.WriteString(cutMiddle(program, consoleProgramLen))
	}
	if host, _, err := net.SplitHostPort(r.ClientAddr); err == nil {
		b.WriteByte(' ')
		b.WriteString(host)
	}
	b.WriteString(" → ")
	b.WriteString(cutMiddle(consoleHost(r), consoleHostLen))
	if r.Transport == inspect.TransportNameQUIC {
		quicWords(&b, r)
	} else {
		if ch := r.ClientHello; ch != nil {
			b.WriteString("  offered ")
			b.WriteString(offerWords(ch))
		}
		b.WriteString("  client ")
		clientWords(&b, r)
		b.WriteString("  upstream ")
		upstreamWords(&b, r)
	}
	if r.AfterQUIC != "" {
		b.WriteString("  after blocked QUIC ")
		b.WriteString(r.AfterQUIC)
	}
	b.WriteString("  = ")
	b.WriteString(string(r.Verdict.Code))
	f := fixNamed(r.Verdict.Fix)
	if e := consoleError(r); e != "" && (f.full == "" || f.detail) {
		b.WriteString(": ")
		b.WriteString(cutMiddle(e, consoleErrorLen))
	}
	if f.full != "" {
		b.WriteString("  fix: ")
		b.WriteString(f.short)
	}
	if m := r.Mirrored; m != nil && len(m.Mismatch) > 0 {
		// Answered ahead, and the origin then answered otherwise: rare, and
		// what the client saw is not what the origin chose.
		b.WriteString("  answered as " + m.From + ", the origin's own answer differed: " + cutMiddle(strings.Join(m.Mismatch, ","), 48))
	}
	return b.String()
}

// consoleHost is the host the client asked for (its SNI, else the target)
// and the target's port.
func consoleHost(r *inspect.ConnRecord) string {
	host, port := r.Target, ""
	if i := strings.LastIndexByte(r.Target, ':'); i >= 0 {
		// Not net.SplitHostPort: a target may be any bytes a client sent.
		host, port = strings.TrimSuffix(strings.TrimPrefix(r.Target[:i], "["), "]"), r.Target[i+1:]
	}
	if r.SNI != "" {
		host = r.SNI
	}
	switch {
	case host == "":
		return "?"
	case port == "":
		return host
	}
	return net.JoinHostPort(host, port)
}

// quicWords writes what became of a QUIC connection: what its hello
// offered, and whether it was relayed (and what the origin answered) or
// blocked (and which TCP connection followed).
//
//	c7 10.73.0.2 → quic.test:443  QUIC offered psk(1)+0-RTT  relayed untouched  origin resumed the client  = passthrough_resumed
//	c9 10.73.0.2 → quic.test:443  QUIC offered nothing  blocked (--quic block)  fell back to TCP c10  = quic_blocked
func quicWords(b *strings.Builder, r *inspect.ConnRecord) {
	b.WriteString("  QUIC")
	if ch := r.ClientHello; ch != nil {
		b.WriteString(" offered ")
		b.WriteString(offerWords(ch))
		if r.EarlyDataSent {
			b.WriteString("+0-RTT")
		}
	}
	if fb := r.QUICFallback; fb != nil && fb.Blocked {
		b.WriteString("  blocked (--quic block)  ")
		if fb.TCPConn != "" {
			b.WriteString("fell back to TCP ")
			b.WriteString(fb.TCPConn)
		} else {
			b.WriteString("no TCP fallback seen")
		}
		return
	}
	b.WriteString("  relayed untouched  ")
	upstreamWords(b, r)
}

// clientWords writes how the client's handshake went.
func clientWords(b *strings.Builder, r *inspect.ConnRecord) {
	leg := r.ClientLeg
	switch {
	case r.Passthrough != "":
		b.WriteString("passed through")
	case r.ClientHello == nil && r.Verdict.Code == inspect.CodeNotTLS:
		b.WriteString("not TLS")
	case r.ClientHello == nil:
		b.WriteString("no hello")
	case leg == nil:
		b.WriteString("no handshake")
	case leg.Error != "" && leg.Alert != "":
		b.WriteString("failed (alert ")
		b.WriteString(leg.Alert)
		b.WriteByte(')')
	case leg.Error != "" && leg.ClosedAfterCertificate:
		b.WriteString("closed after tlsresume's certificate")
	case leg.Error != "":
		b.WriteString("failed")
	case leg.Resumed:
		b.WriteString("resumed")
		from(b, leg.TicketFrom, "'s ticket)")
	default:
		b.WriteString("full")
	}
}

// upstreamWords writes how tlsresume's handshake with the origin went; for
// a connection passed through, the origin's own answer to the client.
func upstreamWords(b *strings.Builder, r *inspect.ConnRecord) {
	u, sh := r.UpstreamLeg, r.ServerHello
	switch {
	case r.Passthrough != "" && sh != nil && sh.Complete && sh.Resumed:
		b.WriteString("origin resumed the client")
	case r.Passthrough != "" && sh != nil && sh.Complete:
		b.WriteString("origin did a full handshake")
	case r.Passthrough != "" && r.ClientAlert != "":
		b.WriteString("origin answered, the client sent alert ")
		b.WriteString(r.ClientAlert)
	case r.Passthrough != "":
		b.WriteString("origin's answer unseen")
	case u == nil:
		b.WriteString("not dialled")
	case u.Error != "":
		b.WriteString("failed")
	case u.ReusedConn != "":
		b.WriteString("pooled")
		from(b, u.ReusedConn, "'s connection)")
	case u.Resumed:
		b.WriteString("resumed")
		from(b, u.SessionFrom, "'s session)")
	case u.Pooled && u.Cache == inspect.CacheNotAsked:
		b.WriteString("pooled")
	default:
		b.WriteString("full")
	}
}

// from writes " (ID's thing)" when id is known.
func from(b *strings.Builder, id, thing string) {
	if id != "" {
		b.WriteString(" (")
		b.WriteString(id)
		b.WriteString(thing)
	}
}

// consoleError is what failed, in the words of whatever said so: the
// upstream leg, the client leg (an alert says enough), the connection.
func consoleError(r *inspect.ConnRecord) string {
	var e string
	switch {
	case r.UpstreamLeg != nil && r.UpstreamLeg.Error != "":
		e = r.UpstreamLeg.Error
	case r.ClientLeg != nil && r.ClientLeg.Error != "" && r.ClientLeg.Alert == "":
		e = r.ClientLeg.Error
	case r.ClientAlert != "":
		e = "the client sent alert " + r.ClientAlert
	case r.Error != "":
		e = r.Error
	}
	// crypto/tls's prefix says nothing the rest does not, nor x509's guess
	// at why an authority is unknown.
	e = strings.TrimPrefix(e, "tls: failed to verify certificate: ")
	if i := strings.Index(e, " (possibly because of "); i > 0 {
		e = e[:i]
	}
	return e
}

// cutMiddle keeps the start and the end of s in about limit bytes: the
// end of an error holds its point (x509's "…, not NAME").
func cutMiddle(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	head := limit/2 - 1
	tail := limit - head - 1
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	start := len(s) - tail
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return s[:head] + "…" + s[start:]
}
