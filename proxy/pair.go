package proxy

import (
	"crypto/tls"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// When the client leg learns what to mirror (Config.Mirror, --mirror): an
// ordering of the pair strategy.
const (
	// MirrorOverlap answers a client of an origin that answered the same
	// offer before with that answer (version, ALPN, the names on its
	// certificate) while the connection's own upstream handshake runs, so
	// the two handshakes overlap instead of following each other. The
	// record names the connection mirrored (mirrored.from) and what the
	// connection's own upstream handshake then answered differently
	// (mirrored.mismatch).
	MirrorOverlap = "overlap"
	// MirrorWait makes every client leg wait for its own connection's
	// upstream handshake and mirror that.
	MirrorWait = "wait"
	// MirrorEarly is MirrorOverlap's old name, still accepted: "early"
	// now means 0-RTT data only.
	MirrorEarly = "early"
)

// pairLeg is --upstream-reuse pair: one upstream connection and handshake
// of the client connection's own. Its handshake completes before the
// client is answered, or, when the origin answered the same offer before
// (MirrorOverlap), runs while the client is answered with that earlier
// answer; settle then waits for it and notes what differed.
type pairLeg struct {
	c       *conn
	oc      *originConn
	ahead   bool       // the client was answered ahead of the handshake
	pending chan error // the handshake's outcome, when ahead
	tr      *pairTransport
}

// openPair dials the origin and handshakes with it, or, when overlap
// allows and the origin's answer to this offer is known, starts the
// handshake and answers the client with the known answer. sip starts
// reading the origin's tickets once the handshake is done (not for a
// connection the pool may adopt: see pool.adopt).
func openPair(c *conn, overlap, sip bool) (*pairLeg, error) {
	s := c.s
	p := &pairLeg{c: c}
	raw, leg, err := s.dialOrigin(s.ctx, c)
	c.rec.UpstreamLeg = leg
	if err != nil {
		return p, err
	}
	c.noteOrigin(raw.RemoteAddr().String())
	if known, ok := c.answerAhead(overlap); ok {
		c.mirror, p.ahead, p.pending = known, true, make(chan error, 1)
		go func() {
			// Only the upstream leg and p.oc are written here, read once
			// pending has been received.
			oc, err := s.handshakeOrigin(s.ctx, c, raw, c.offer, leg)
			if err == nil && sip {
				oc.startSip()
			}
			p.oc = oc
			p.pending <- err
		}()
		return p, nil
	}
	p.oc, err = s.handshakeOrigin(s.ctx, c, raw, c.offer, leg)
	if err != nil {
		return p, err
	}
	if sip {
		p.oc.startSip()
	}
	c.mirror = answerOf("", p.oc.tls.ConnectionState())
	s.learned.rememberAnswer(answerKey(c), answerOf(c.rec.ID, p.oc.tls.ConnectionState()))
	return p, nil
}

// answerAhead returns the answer c's client leg may mirror before c's own
// upstream handshake completes: only where that answer decides the whole
// client leg. Not when the origin asks for client certificates or an
// identity is presented (the client's certificate may change the upstream
// handshake: presentClientIdentity), and only for TLS 1.3 and HTTP (any
// HTTP the origin then speaks can be relayed, and a TLS 1.2 origin may
// call for passing a session-ID client through).
func (c *conn) answerAhead(overlap bool) (answer, bool) {
	s := c.s
	if !overlap || c.ident != nil || s.learned.asksForCert(c.certOrigin) ||
		s.clientAuth(nil, false) != tls.NoClientCert || inspect.MaxVersion(c.rec.ClientHello) < int(inspect.VersionTLS13) {
		return answer{}, false
	}
	a, ok := s.learned.answerTo(answerKey(c))
	if !ok || a.version != tls.VersionTLS13 || !slices.Contains(servableALPN, a.alpn) {
		return answer{}, false
	}
	return a, true
}

func (p *pairLeg) version() uint16 {
	if p.ahead || p.oc == nil {
		return 0
	}
	return p.oc.tls.ConnectionState().Version
}

func (p *pairLeg) issuesTickets() (issued, known bool) {
	if p.ahead || p.oc == nil {
		return false, false
	}
	st := p.oc.tls.ConnectionState()
	switch {
	case st.Version >= tls.VersionTLS13:
		return false, false
	case st.DidResume:
		// Go's client resumes TLS 1.2 only by a ticket the origin issued
		// (handshake_client.go, loadSession), whether or not it renews it.
		return true, true
	}
	return p.oc.view.Stored() > 0, true
}

// settle waits for the handshake the client was answered ahead of, and
// notes what the origin answered differently from what was mirrored.
func (p *pairLeg) settle() error {
	c := p.c
	if !p.ahead {
		return nil
	}
	p.ahead = false
	if err := <-p.pending; err != nil {
		return err
	}
	actual := answerOf(c.rec.ID, p.oc.tls.ConnectionState())
	c.s.learned.rememberAnswer(answerKey(c), actual)
	c.rec.Mirrored.Mismatch = mismatches(c, c.mirror, actual)
	return nil
}

func (p *pairLeg) transport() (http.RoundTripper, error) {
	t, err := newPairTransport(p.c, p.oc)
	p.tr = t
	return t, err
}

func (p *pairLeg) stream() (net.Conn, error) { return p.oc.take(), nil }

// probe keeps the upstream handshake in the record, marked as a probe.
func (p *pairLeg) probe() bool {
	known := p.close()
	p.c.rec.UpstreamLeg.Probe = true
	return known
}

func (p *pairLeg) close() bool {
	if p.ahead {
		p.settle() // a handshake still under way writes the leg
	}
	if p.tr != nil {
		p.tr.close()
	}
	p.oc.close()
	if p.oc != nil && p.c.rec.UpstreamLeg != nil {
		p.c.rec.UpstreamLeg.TicketsReceived = p.oc.view.Stored()
	}
	return p.oc.ticketsKnown()
}

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
