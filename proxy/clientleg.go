package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
)

// handshakeClient is the path's fifth step: it terminates the client's
// TLS, mirroring the origin's answer (c.mirror), and records the client
// leg. A client that fails the handshake ends the connection: its leg says
// why, and --auto-passthrough hears of a rejected certificate. Then both
// legs stand: an upstream handshake the client was answered ahead of is
// waited for (its failure is answered in HTTP on the client's handshake),
// and a client that presented an identity tlsresume holds gets it
// presented upstream too.
func (c *conn) handshakeClient() (*tls.Conn, error) {
	s := c.s
	cfg := s.clientConfig(c, c.mirror)
	c.facts.ticketsDisabled = cfg.SessionTicketsDisabled
	tc, err := s.clientHandshake(s.ctx, c, c.clientStream(), cfg)
	c.rec.ClientLeg = c.clientLeg
	if err != nil {
		c.noteRejection()
		return nil, errLegSays
	}
	if err := c.up.settle(); err != nil {
		return tc, c.answerFailureAfterHandshake(tc, err)
	}
	return tc, c.presentClientIdentity(tc)
}

// clientStream is the client connection as the client sent it: the bytes
// peeked before TLS, then the connection. It is handed out once.
func (c *conn) clientStream() net.Conn {
	r := &replayConn{Conn: c.client, pending: c.replay}
	c.replay = nil
	return r
}

// noteRejection feeds --auto-passthrough a client leg that rejected
// tlsresume's certificate.
func (c *conn) noteRejection() {
	s := c.s
	if !s.cfg.AutoPassthrough || !rejectedCertificate(c.clientLeg) {
		return
	}
	if s.learned.autoPass.reject(c.passClient(), c.serverName(), c.rec.ID, c.clientLeg.Alert, s.cfg.Now()) {
		s.cfg.Log.Info().Str("client", c.passClient()).Str("host", c.serverName()).Str("conn_id", c.rec.ID).
			Msg("--auto-passthrough: this client's connections to this host are now passed through")
	}
}

// clientConfig builds the tls.Config for one client connection: a clone of
// the shared base (so every connection shares the ticket keys), mirroring
// the origin's answer a, with hooks that record ticket lineage.
func (s *Server) clientConfig(c *conn, a answer) *tls.Config {
	cfg := s.clientBase.Clone()
	m := &inspect.Mirrored{From: a.from}
	c.rec.Mirrored = m
	// Version: at most what the origin negotiated, so a TLS 1.2-only origin
	// is seen by the client as TLS 1.2 (and its tickets stay TLS 1.2 tickets).
	cfg.MaxVersion = a.version
	if s.cfg.ClientMaxVersion != 0 {
		cfg.MaxVersion = s.cfg.ClientMaxVersion
		m.Overrides = append(m.Overrides, "client_max_tls")
	}
	m.MaxVersion = inspect.VersionName(cfg.MaxVersion)
	// ALPN: the origin's choice, so client and origin speak one protocol.
	cfg.NextProtos = nil
	if a.alpn != "" {
		cfg.NextProtos = []string{a.alpn}
	}
	m.ALPN = cfg.NextProtos
	// Tickets: as the origin issues them, unless a flag says otherwise.
	c.clientLeg = &inspect.ClientLeg{Ticket: inspect.TicketNone}
	c.mirrorTickets(cfg, m)
	// The leaf carries the origin certificate's names, so clients that dial
	// by IP or send a different SNI still verify; names a leaf cannot carry
	// (an origin's SAN with a space, say) are left out and recorded.
	names, leftOut := certs.UsableNames(leafNames(c, a.names))
	m.Names, m.NamesLeftOut = names, leftOut
	leaf, err := s.cfg.Issuer.LeafFor(names)
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return leaf, err }
	cfg.ClientAuth = s.clientAuth(c.rec.UpstreamLeg, s.learned.asksForCert(c.certOrigin))
	l := &lineage{connID: c.rec.ID, now: s.cfg.Now, leg: c.clientLeg, keys: s.cfg.TicketKeys, keyID: s.cfg.TicketKeys.currentID(),
		rule: resumptionRule(s.cfg.ClientResumption, c.serverName()), c: c}
	l.install(cfg)
	return cfg
}

// leafNames are the names for the client's leaf: the origin certificate's
// names, plus the SNI or the CONNECT host, sorted.
func leafNames(c *conn, origin []string) []string {
	names := slices.Clone(origin)
	if c.rec.SNI != "" {
		names = append(names, c.rec.SNI)
	}
	if host, _, err := net.SplitHostPort(c.rec.Target); err == nil {
		names = append(names, host)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// clientHandshake terminates the client's TLS with cfg and records it.
func (s *Server) clientHandshake(ctx context.Context, c *conn, raw net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	leg := c.clientLeg
	start := s.cfg.Now()
	tail := &tailConn{Conn: raw}
	tc := tls.Server(tail, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	leg.HandshakeMS = ms(s.cfg.Now().Sub(start))
	if err != nil {
		leg.Error = err.Error()
		leg.Alert = remoteAlert(err)
		if leg.Alert == "" {
			leg.Alert = tail.plaintextAlert()
		}
		// Some pinning clients send no alert: they close the connection as
		// soon as they see the certificate. By then tlsresume has sent its
		// whole flight (TLS 1.3: ServerHello to Finished; TLS 1.2: to
		// ServerHelloDone), so a close without an alert means just that.
		if leg.Alert == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) && c.client.written.Load() > 0 {
			leg.ClosedAfterCertificate = true
		}
		return nil, err
	}
	st := tc.ConnectionState()
	leg.Version = inspect.VersionName(st.Version)
	leg.CipherSuite = tls.CipherSuiteName(st.CipherSuite)
	leg.ALPN = st.NegotiatedProtocol
	leg.Resumed = st.DidResume
	recordClientCert(leg, cfg.ClientAuth, &st)
	return tc, nil
}

// tailConn keeps the last bytes the client sent during the handshake.
// OpenSSL, rejecting a TLS 1.3 server's certificate, sends its alert in
// plaintext (it has not yet switched to its handshake keys), which
// crypto/tls reports as "bad record MAC"; the bytes still say which alert.
type tailConn struct {
	net.Conn
	tail [7]byte
	n    int // bytes read so far, up to len(tail)
}

func (t *tailConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n >= len(t.tail) {
		copy(t.tail[:], b[n-len(t.tail):n])
		t.n = len(t.tail)
	} else if n > 0 {
		keep := min(t.n, len(t.tail)-n)
		copy(t.tail[:keep], t.tail[t.n-keep:t.n])
		copy(t.tail[keep:], b[:n])
		t.n = keep + n
	}
	return n, err
}

// plaintextAlert names the alert when the last bytes read were a whole
// plaintext alert record (type 21, length 2), else "".
func (t *tailConn) plaintextAlert() string {
	if t.n != len(t.tail) || t.tail[0] != 21 || t.tail[1] != 3 || t.tail[3] != 0 || t.tail[4] != 2 {
		return ""
	}
	return inspect.AlertName(t.tail[6])
}

// remoteAlert names the alert a peer sent, from crypto/tls's error: it
// reports a received alert as a *net.OpError with Op "remote error" whose
// message is the alert's description (crypto/tls/alert.go).
func remoteAlert(err error) string {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return ""
	}
	msg := strings.TrimPrefix(oe.Err.Error(), "tls: ")
	if name, ok := goAlertNames[msg]; ok {
		return name
	}
	return strings.ReplaceAll(msg, " ", "_")
}

// goAlertNames maps crypto/tls's alert texts (alert.go) to RFC 8446 names.
var goAlertNames = map[string]string{
	"bad certificate":                "bad_certificate",
	"unsupported certificate":        "unsupported_certificate",
	"revoked certificate":            "certificate_revoked",
	"expired certificate":            "certificate_expired",
	"unknown certificate":            "certificate_unknown",
	"unknown certificate authority":  "unknown_ca",
	"access denied":                  "access_denied",
	"handshake failure":              "handshake_failure",
	"protocol version not supported": "protocol_version",
	"no application protocol":        "no_application_protocol",
	"internal error":                 "internal_error",
	"error decoding message":         "decode_error",
	"illegal parameter":              "illegal_parameter",
	"user canceled":                  "user_canceled",
}
