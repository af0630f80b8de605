package proxy

import (
	"crypto/tls"
	"path"
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// The rules that pass a client through untouched instead of intercepting
// it, asked by decide and, once the origin's version is known, by the
// upstream step (passThroughAfterAll).

// passthroughReason says why a connection must not be intercepted, or "".
func (c *conn) passthroughReason() string {
	ch := c.rec.ClientHello
	if ch.EarlyData {
		// crypto/tls aborts any TCP ClientHello offering early_data
		// (handshake_server_tls13.go: "client sent unexpected early data").
		return "the client offered early_data (0-RTT), which Go's TLS server refuses"
	}
	host := c.serverName()
	for _, p := range c.s.cfg.Passthrough {
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(host)); ok {
			return "matches --passthrough " + p
		}
	}
	if why, ok := c.s.learned.autoPass.get(c.passClient(), host); ok {
		return "--auto-passthrough: " + why
	}
	return ""
}

// sessionIDReason says why a connection is passed through because its
// client can resume only by session ID, or "". A TLS 1.2 handshake without
// the session_ticket extension resumes only by session ID (RFC 5246,
// Section 7.4.1.2; RFC 5077, Section 3.1), and Go's TLS server keeps no
// session cache and never issues an ID (crypto/tls/handshake_server.go):
// intercepted, such a client never resumes, while directly it may. Passed
// through, the real server resumes it as it would directly. negotiated is
// the origin's version once tlsresume's upstream handshake made it known,
// else 0.
func (c *conn) sessionIDReason(negotiated uint16) string {
	ch := c.rec.ClientHello
	if c.s.cfg.SessionIDClients != "passthrough" || ch.SessionTicket.Offered {
		return ""
	}
	const mode = " (--session-id-clients passthrough: the real server resumes it as it would directly; its HTTP is not seen)"
	switch {
	case ch.Attempt == inspect.AttemptSessionID:
		return "the client offers a session ID the server issued" + mode
	case inspect.MaxVersion(ch) <= int(inspect.VersionTLS12):
		return "a TLS 1.2 client without the session_ticket extension resumes only by session ID, which Go's TLS server cannot" + mode
	case negotiated != 0 && negotiated <= tls.VersionTLS12:
		return "the origin speaks TLS 1.2 and the client sends no session_ticket extension: it resumes only by session ID, which Go's TLS server cannot" + mode
	}
	return ""
}
