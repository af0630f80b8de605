package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// ClientAuth modes of the client leg (Config.ClientAuth, --client-auth).
const (
	// ClientAuthMirror asks the client for a certificate when the origin
	// asked tlsresume for one on this connection's upstream handshake.
	ClientAuthMirror = "mirror"
	// ClientAuthRequest always asks, and goes on without one.
	ClientAuthRequest = "request"
	// ClientAuthRequire always asks, and fails the handshake without one.
	ClientAuthRequire = "require"
	// ClientAuthNone never asks.
	ClientAuthNone = "none"
)

// UpstreamIdentity is a client certificate tlsresume may present to
// origins whose name matches Pattern (path.Match on the SNI, else the
// target host; "*" for every origin). --upstream-client-cert.
type UpstreamIdentity struct {
	Pattern string
	Cert    tls.Certificate
}

// identity is one of the identities tlsresume holds, as a handshake uses
// it: the certificate, and its name in cache keys and records.
type identity struct {
	cert    *tls.Certificate
	id      string // the certificate's SHA-256, first 8 bytes in hex: part of the upstream cache key
	subject string
	sha256  string
}

func newIdentity(c *tls.Certificate) *identity {
	if c == nil || len(c.Certificate) == 0 {
		return nil
	}
	sum := sha256.Sum256(c.Certificate[0])
	id := &identity{cert: c, id: hex.EncodeToString(sum[:8]), sha256: hex.EncodeToString(sum[:])}
	if leaf, err := x509.ParseCertificate(c.Certificate[0]); err == nil {
		id.subject = leaf.Subject.String()
	}
	return id
}

// key is the identity's part of an upstream cache key ("" for none).
func (id *identity) key() string {
	if id == nil {
		return ""
	}
	return id.id
}

// upstreamIdentity is the identity configured for host, if any: the first
// pattern that matches.
func (s *Server) upstreamIdentity(host string) *identity {
	host = strings.ToLower(host)
	for i := range s.cfg.UpstreamClientCerts {
		u := &s.cfg.UpstreamClientCerts[i]
		if ok, _ := path.Match(strings.ToLower(u.Pattern), host); ok {
			return newIdentity(&u.Cert)
		}
	}
	return nil
}

// heldIdentity is the identity whose certificate the client presented, when
// tlsresume holds its key: that identity is then presented upstream, so
// each identity an app uses reaches the origin unchanged.
func (s *Server) heldIdentity(leaf []byte) *identity {
	for i := range s.cfg.UpstreamClientCerts {
		c := &s.cfg.UpstreamClientCerts[i].Cert
		if len(c.Certificate) > 0 && string(c.Certificate[0]) == string(leaf) {
			return newIdentity(c)
		}
	}
	return nil
}

// presentIdentity answers an origin's CertificateRequest with id (nothing
// when nil), and records it on leg.
func presentIdentity(leg *inspect.UpstreamLeg, id *identity) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cc := clientCertOf(leg)
		cc.Requested = true
		if id == nil {
			return &tls.Certificate{}, nil // none: the origin decides whether to go on
		}
		cc.Presented, cc.Subject, cc.SHA256 = true, id.subject, id.sha256
		return id.cert, nil
	}
}

func clientCertOf(leg *inspect.UpstreamLeg) *inspect.ClientCert {
	if leg.ClientCert == nil {
		leg.ClientCert = &inspect.ClientCert{}
	}
	return leg.ClientCert
}

// recordUpstreamResumption notes, on a resumed upstream handshake made with
// an identity, that the session carries that identity's certificate.
func recordUpstreamResumption(leg *inspect.UpstreamLeg, id *identity) {
	if !leg.Resumed || id == nil {
		return
	}
	cc := clientCertOf(leg)
	cc.Subject, cc.SHA256, cc.FromSession = id.subject, id.sha256, leg.SessionFrom
}

// clientAuth is the client leg's tls.ClientAuthType for this connection:
// mirror asks when the origin asked, on this upstream handshake or on any
// before (originAsks). Any certificate is accepted (tlsresume does not
// know the app's CA).
func (s *Server) clientAuth(up *inspect.UpstreamLeg, originAsks bool) tls.ClientAuthType {
	switch s.cfg.ClientAuth {
	case ClientAuthRequest:
		return tls.RequestClientCert
	case ClientAuthRequire:
		return tls.RequireAnyClientCert
	case ClientAuthNone:
		return tls.NoClientCert
	}
	// The origin asked, now or before: a resumed upstream handshake is not
	// asked again, yet the client would be asked on a full handshake with
	// the origin itself (and its certificate may then change the identity
	// presented upstream, mirrorIdentity). Asking is also what lets
	// crypto/tls resume a client session that carries a certificate
	// (handshake_server*.go, checkForResumption).
	if originAsks || (up != nil && up.ClientCert != nil) {
		return tls.RequestClientCert
	}
	return tls.NoClientCert
}

// recordClientCert notes on the client leg what the client presented, or,
// on a resumed handshake, whose certificate the session carries.
func recordClientCert(leg *inspect.ClientLeg, asked tls.ClientAuthType, st *tls.ConnectionState) {
	if asked == tls.NoClientCert && len(st.PeerCertificates) == 0 {
		return
	}
	cc := &inspect.ClientCert{Requested: asked != tls.NoClientCert && !st.DidResume}
	if len(st.PeerCertificates) > 0 {
		sum := sha256.Sum256(st.PeerCertificates[0].Raw)
		cc.Subject, cc.SHA256 = st.PeerCertificates[0].Subject.String(), hex.EncodeToString(sum[:])
		if st.DidResume {
			cc.FromSession = leg.TicketFrom
		} else {
			cc.Presented = true
		}
	}
	leg.ClientCert = cc
}

// certWords says, for a verdict, what happened to client certificates.
func certWords(c *inspect.ClientLeg, u *inspect.UpstreamLeg) string {
	var parts []string
	if c != nil && c.ClientCert != nil && c.ClientCert.FromSession != "" {
		parts = append(parts, fmt.Sprintf("the client was not asked for its certificate again: the session carries %s's (%s)", c.ClientCert.FromSession, c.ClientCert.Subject))
	}
	if u != nil && u.ClientCert != nil {
		switch cc := u.ClientCert; {
		case cc.FromSession != "":
			parts = append(parts, fmt.Sprintf("upstream resumed the session of %s's identity (%s)", cc.FromSession, cc.Subject))
		case cc.Requested && !cc.Presented && u.Error != "":
			parts = append(parts, "the origin asked for a client certificate and tlsresume had none for it: give one with --upstream-client-cert HOST=CERT.pem,KEY.pem")
		case cc.Requested && !cc.Presented:
			parts = append(parts, "the origin asked for a client certificate; tlsresume had none for it and presented none")
		}
	}
	return strings.Join(parts, "; ")
}

// presentClientIdentity makes the upstream leg present the identity the
// client presented, when tlsresume holds its key and presented another (or
// none) upstream: the upstream handshake is made again with it, so each
// identity an app uses reaches the origin unchanged (seed 001).
func (c *conn) presentClientIdentity(tc *tls.Conn) error {
	// On a resumed handshake the certificate is the session's: the
	// upstream leg must then use that identity's session too, never
	// another identity's.
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	id := c.s.heldIdentity(st.PeerCertificates[0].Raw)
	if id == nil || id.key() == c.ident.key() {
		return nil
	}
	disabled := c.facts.ticketsDisabled
	c.up.close()
	c.s.learned.abandonOrigin(c)
	c.ident = id
	err := c.reopenUpstream()
	c.facts.ticketsDisabled = disabled
	if err != nil {
		return errLegSays // the new upstream leg says why
	}
	return nil
}

// reopenUpstream makes the upstream leg again with a handshake of its own,
// after the client presented another identity than the leg did.
func (c *conn) reopenUpstream() error {
	if c.s.pool != nil {
		up, err := c.openOwnPooled()
		c.up = up
		return err
	}
	up, err := openPair(c, false, true)
	c.up = up
	return err
}
