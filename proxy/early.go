package proxy

import (
	"crypto/tls"
	"net"
	"slices"
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// When the client leg learns what to mirror (Config.Mirror, --mirror).
const (
	// MirrorEarly answers a client of an origin that answered the same
	// offer before with that answer (version, ALPN, the names on its
	// certificate) while the connection's own upstream handshake runs, so
	// the two handshakes overlap instead of following each other. The
	// record names the connection mirrored (mirrored.from) and what the
	// connection's own upstream handshake then answered differently
	// (mirrored.mismatch).
	MirrorEarly = "early"
	// MirrorWait makes every client leg wait for its own connection's
	// upstream handshake and mirror that.
	MirrorWait = "wait"
)

// answer is how an origin answered an upstream offer: what a client leg
// mirrors.
type answer struct {
	from    string // the earlier connection whose upstream handshake it was; "" for this one's own
	version uint16
	alpn    string
	names   []string // the DNS names and IPs of the origin's leaf
}

// answerOf is the answer of an upstream handshake with state st, made by
// connection from ("" when the client leg mirrors its own connection's).
func answerOf(from string, st tls.ConnectionState) answer {
	a := answer{from: from, version: st.Version, alpn: st.NegotiatedProtocol}
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		// Clipped: appending the IPs copies rather than writing into the
		// certificate's own array; without IPs the names are shared.
		a.names = slices.Clip(leaf.DNSNames)
		for _, ip := range leaf.IPAddresses {
			a.names = append(a.names, ip.String())
		}
	}
	return a
}

// answerKey names an origin's answer to c's offer: the origin as the
// upstream cache keys it (name, address reached, identity) and the ALPN
// offered, which is all of the offer that changes what is mirrored.
func answerKey(c *conn) string {
	return c.origin + "|" + strings.Join(c.offer.alpn, ",")
}

// rememberAnswer keeps how the origin answered the offer named key.
func (m *memory) rememberAnswer(key string, a answer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.answers) >= maxMemory {
		m.answers = map[string]answer{}
	}
	m.answers[key] = a
}

func (m *memory) answerTo(key string) (answer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.answers[key]
	return a, ok
}

// earlyAnswer returns the answer c's client leg may mirror before c's own
// upstream handshake completes: only where that answer decides the whole
// client leg. Not when the origin asks for client certificates or an
// identity is presented (the client's certificate may change the upstream
// handshake: mirrorIdentity), not with --upstream-reuse pool, and only for
// TLS 1.3 and HTTP (any HTTP the origin then speaks can be relayed, and a
// TLS 1.2 origin may call for passing a session-ID client through).
func (s *Server) earlyAnswer(c *conn) (answer, bool) {
	if s.cfg.Mirror != MirrorEarly || s.pool != nil || c.ident != nil || s.origins.asksForCert(c.certOrigin) ||
		s.clientAuth(nil, false) != tls.NoClientCert || inspect.MaxVersion(c.rec.ClientHello) < int(inspect.VersionTLS13) {
		return answer{}, false
	}
	a, ok := s.origins.answerTo(answerKey(c))
	if !ok || a.version != tls.VersionTLS13 || !slices.Contains(servableALPN, a.alpn) {
		return answer{}, false
	}
	return a, true
}

// interceptEarly is intercept's path for an origin whose answer is known:
// the upstream handshake on raw and the client's handshake, mirroring the
// known answer, run at once; the stream is relayed when both are done.
func (s *Server) interceptEarly(c *conn, raw net.Conn, replay []byte, known answer) {
	cfg := s.clientConfig(c, known)
	c.facts.ticketsDisabled = cfg.SessionTicketsDisabled
	upErr := make(chan error, 1)
	go func() {
		// Only the upstream leg and c.up are written here, and read once
		// upErr has been received.
		up, err := s.handshakeOrigin(s.ctx, c, raw, c.offer, c.rec.UpstreamLeg)
		if err == nil {
			up.startSip()
		}
		c.up = up
		upErr <- err
	}()
	tc, err := s.clientHandshake(s.ctx, c, &replayConn{Conn: c.client, pending: replay}, cfg)
	c.rec.ClientLeg = c.clientLeg
	uerr := <-upErr
	if uerr == nil {
		actual := answerOf(c.rec.ID, c.up.tls.ConnectionState())
		s.origins.rememberAnswer(answerKey(c), actual)
		c.rec.Mirrored.Mismatch = mismatches(c, known, actual)
	}
	switch {
	case err != nil:
		s.noteRejection(c)
		c.finish()
	case uerr != nil:
		// The client's handshake is done: it is told what failed in HTTP,
		// as answerFailure tells a client whose handshake waited.
		if s.ctx.Err() == nil {
			s.serveFailure(c, tc, tc.ConnectionState().NegotiatedProtocol, uerr)
		}
		tc.Close()
		c.finish()
	default:
		s.relay.serveTLS(c, tc)
	}
}

// mismatches lists what the connection's own upstream handshake (actual)
// answered differently from the answer its client leg mirrored.
func mismatches(c *conn, mirrored, actual answer) []string {
	var out []string
	if actual.version != mirrored.version {
		out = append(out, "max_version")
	}
	if actual.alpn != mirrored.alpn {
		out = append(out, "alpn")
	}
	if !slices.Equal(leafNames(c, actual.names), leafNames(c, mirrored.names)) {
		out = append(out, "names")
	}
	if l := c.rec.UpstreamLeg; l != nil && l.ClientCert != nil && l.ClientCert.Requested {
		out = append(out, "client_cert")
	}
	return out
}
