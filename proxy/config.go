package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// Config configures a Server. The zero value of each field means its
// documented default; defaults are applied in one place, withDefaults.
type Config struct {
	// Issuer mints the leaves shown to clients. Required.
	Issuer *certs.Issuer
	// CA is offered for download at http://tlsresume.proxy/. Default: none
	// (the page says so).
	CA *certs.CA
	// TicketKeys are the client-leg session-ticket keys. Default: fresh
	// keys held in memory (clients then cannot resume across restarts).
	TicketKeys *TicketKeys
	// IDFile, when set, keeps connection ids counting across runs (the
	// CLI puts it beside the ticket keys: c1 of one run is never c1 of the
	// next). Default: none, each run counts from c1.
	IDFile string
	// TicketRotation is how often a new ticket key starts encrypting.
	// Default 24h; at least MinTicketRotation. Older keys still decrypt
	// for 7 days, up to 256 keys (the oldest go first beyond that).
	TicketRotation time.Duration

	// Allow lists client networks that may use the proxy. Default:
	// loopback only. The CLI refuses a non-loopback listener without it.
	Allow []netip.Prefix
	// Auth, "user:pass", requires Proxy-Authorization basic credentials.
	// Default: none.
	Auth string
	// MaxConns caps concurrent client connections. Default 1024.
	MaxConns int

	// ClientTickets issues session tickets to clients: "mirror" (default:
	// as the origin did), "on" or "off".
	ClientTickets string
	// ClientResumption says what to do with tickets of tlsresume's own that
	// clients offer, per host (see ResumptionRule). Default: allow all.
	ClientResumption []ResumptionRule
	// ClientAuth says when the client leg asks the client for a
	// certificate: ClientAuthMirror (default: when the origin asked
	// tlsresume on this connection), ClientAuthRequest, ClientAuthRequire or
	// ClientAuthNone. Any certificate is accepted and recorded.
	ClientAuth string
	// UpstreamClientCerts are identities tlsresume may present to origins
	// that ask for a client certificate: the one whose certificate the
	// client presented on the client leg, else the first whose pattern
	// matches the host. Default: none.
	UpstreamClientCerts []UpstreamIdentity
	// SessionIDClients is what to do with a client that can resume only by
	// session ID (TLS 1.2 without the session_ticket extension), which Go's
	// TLS server cannot resume: "passthrough" (default: relay it untouched,
	// so the real server resumes it as it would directly; its HTTP is not
	// seen) or "intercept" (see its HTTP; it never resumes here).
	SessionIDClients string
	// UpstreamReuse is ReusePair (one upstream connection and handshake per
	// client connection, the default) or ReusePool (--upstream-reuse).
	UpstreamReuse string
	// Mirror is when the client leg learns what to mirror: MirrorOverlap
	// (default: for an origin that answered the same offer before, the
	// client is answered with that earlier answer while this connection's
	// own upstream handshake runs, and the record names it and any
	// difference) or MirrorWait (every client leg waits for its own
	// connection's upstream handshake).
	Mirror string
	// ClientMinVersion and ClientMaxVersion bound the client leg. Default:
	// TLS 1.0 and the origin's negotiated version (mirroring).
	ClientMinVersion, ClientMaxVersion uint16

	// Passthrough lists host globs (path.Match on the SNI, else the target
	// host) whose connections are relayed untouched, with both hellos still
	// read. Default: none.
	Passthrough []string
	// AutoPassthrough passes a host through once a client rejected
	// tlsresume's certificate for it (pinning). Default: off.
	AutoPassthrough bool
	// Resolver looks up origins. It must not be tlsresume's own DNS server.
	// Default: net.DefaultResolver.
	Resolver *net.Resolver
	// RecentName returns the name a client last asked tlsresume's DNS
	// server for, to route an SNI-less connection. Default: none.
	RecentName func(client netip.Addr) (string, bool)
	// SelfAddrs are tlsresume's listeners that the Server does not accept
	// on itself: the live view, the DNS server's port (TCP and UDP share
	// it). Like the Server's own listeners, no client reaches them through
	// the proxy: not by CONNECT, forward request, redirection or DNS
	// routing, by any address or name that leads to them (a listener on
	// 0.0.0.0 or :: is reached by every local address). Default: none.
	SelfAddrs []netip.AddrPort

	// QUIC is what becomes of QUIC flows handed to HandleQUIC (a
	// WireGuard device's UDP to port 443): QUICPass (default: relayed
	// untouched, each QUIC connection recorded with the origin's answer)
	// or QUICBlock (dropped, so the app falls back to TCP; recorded as
	// blocked, naming the TCP connection that followed).
	QUIC string
	// QUICIdleTimeout ends a relayed QUIC flow that carried nothing either
	// way for this long, and publishes its last connection's record.
	// Default 30s: the idle timeout Chromium and quic-go ask for
	// (max_idle_timeout, RFC 9000 Section 10.1), past which neither keeps
	// the connection.
	QUICIdleTimeout time.Duration

	// Upstream is tlsresume's own upstream session cache. Default: a cache
	// with upstream.CacheConfig's defaults.
	Upstream *upstream.Cache
	// UpstreamRoots verifies origin certificates. Default: the system roots.
	UpstreamRoots *x509.CertPool
	// InsecureUpstream skips origin certificate verification (recorded).
	InsecureUpstream bool

	// Timeouts. Defaults: 10s to read the CONNECT request, 10s to peek the
	// ClientHello, 10s per TLS handshake, 10s to dial, 5 minutes idle, and
	// 10s of silence after one side of a relayed connection has closed.
	ConnectTimeout, PeekTimeout, HandshakeTimeout, DialTimeout, IdleTimeout, HalfCloseTimeout time.Duration
	// Linger is how long a finished client connection waits for the
	// client's own close_notify before closing. Default 250ms.
	Linger time.Duration

	// KeyLog receives NSS key log lines for both legs. Default: none.
	KeyLog io.Writer
	// Log is the console logger. Default zerolog.Nop().
	Log zerolog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.TicketRotation == 0 {
		c.TicketRotation = 24 * time.Hour
	}
	if c.MaxConns == 0 {
		c.MaxConns = 1024
	}
	if c.ClientAuth == "" {
		c.ClientAuth = ClientAuthMirror
	}
	if c.SessionIDClients == "" {
		c.SessionIDClients = "passthrough"
	}
	if c.Mirror == "" || c.Mirror == MirrorEarly {
		c.Mirror = MirrorOverlap
	}
	if c.UpstreamReuse == "" {
		c.UpstreamReuse = ReusePair
	}
	if c.ClientTickets == "" {
		c.ClientTickets = "mirror"
	}
	if c.ClientMinVersion == 0 {
		c.ClientMinVersion = tls.VersionTLS10
	}
	for _, d := range []*time.Duration{&c.ConnectTimeout, &c.PeekTimeout, &c.HandshakeTimeout, &c.DialTimeout, &c.HalfCloseTimeout} {
		if *d == 0 {
			*d = 10 * time.Second
		}
	}
	if c.Linger == 0 {
		c.Linger = 250 * time.Millisecond
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.QUIC == "" {
		c.QUIC = QUICPass
	}
	if c.QUICIdleTimeout == 0 {
		c.QUICIdleTimeout = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
