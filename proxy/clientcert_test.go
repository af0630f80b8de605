package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// clientPKI is a CA for client identities and the certificates it issued.
type clientPKI struct {
	pool *x509.CertPool
	ca   *x509.Certificate
	cert tlstest.Cert
}

func newClientPKI(t *testing.T) *clientPKI {
	t.Helper()
	c := tlstest.NewCert(t, tlstest.CertOptions{CommonName: "client CA", CA: true, ClientAuth: true})
	return &clientPKI{pool: c.Pool(), ca: c.TLS.Leaf, cert: c}
}

// identity issues a client certificate for cn.
func (p *clientPKI) identity(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	return p.cert.Issue(t, tlstest.CertOptions{CommonName: cn, ClientAuth: true}).TLS
}

// identityOrigin is an origin that requires a client certificate of pki
// and lists the identities it saw, one per full handshake.
type identityOrigin struct {
	*origin
	mu   sync.Mutex
	seen []string
}

func startIdentityOrigin(t *testing.T, pki *clientPKI, version uint16) *identityOrigin {
	o := &identityOrigin{}
	o.origin = startOrigin(t, func(c *tls.Config) {
		c.MaxVersion = version
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pki.pool
		c.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			o.mu.Lock()
			o.seen = append(o.seen, chains[0][0].Subject.CommonName)
			o.mu.Unlock()
			return nil
		}
	})
	return o
}

func (o *identityOrigin) identities() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.seen, ",")
}

// TestOriginAsksWithoutIdentity: an origin that requires a client
// certificate, and tlsresume holds none for it: the record says the
// certificate was asked for and which flag supplies one.
func TestOriginAsksWithoutIdentity(t *testing.T) {
	pki := newClientPKI(t)
	// TLS 1.2: the origin refuses within the handshake (in TLS 1.3 the
	// client's handshake is over before the server says no).
	o := startIdentityOrigin(t, pki, tls.VersionTLS12)
	e := startProxy(t, tempDir(t), nil)
	status, body := e.failPage(o.addr, &tls.Config{ServerName: "origin.test"})
	if status != http.StatusBadGateway || !strings.Contains(body, "--upstream-client-cert") {
		t.Errorf("failure page %d %q: want 502 naming the flag", status, body)
	}
	r := e.next()
	cc := r.UpstreamLeg.ClientCert
	if r.Verdict.Code != "upstream_failed" || cc == nil || !cc.Requested || cc.Presented || !strings.Contains(r.Verdict.Text, "--upstream-client-cert") {
		t.Errorf("verdict %+v, upstream client_cert %+v", r.Verdict, cc)
	}
}

// TestIdentitiesNeverCross is Apple's QA1727 through tlsresume: an app that
// uses one identity (bob) on one connection and another (alice) on the
// next. Each identity tlsresume holds reaches the origin as the app
// presented it; a session made with one identity is never resumed with the
// other; and a resumed client connection is recorded as not asked for its
// certificate again, carrying the first connection's.
func TestIdentitiesNeverCross(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(map[uint16]string{tls.VersionTLS12: "tls1.2", tls.VersionTLS13: "tls1.3"}[version], func(t *testing.T) {
			pki := newClientPKI(t)
			alice, bob := pki.identity(t, "alice"), pki.identity(t, "bob")
			o := startIdentityOrigin(t, pki, version)
			e := startProxy(t, tempDir(t), func(c *Config) {
				// alice for this origin by default; bob held for whoever presents it.
				c.UpstreamClientCerts = []UpstreamIdentity{{Pattern: "origin.test", Cert: alice}, {Pattern: "none.invalid", Cert: bob}}
			})
			bobCache := tls.NewLRUClientSessionCache(8)
			dial := func(who tls.Certificate, cache tls.ClientSessionCache) {
				t.Helper()
				if _, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", Certificates: []tls.Certificate{who}, ClientSessionCache: cache}); err != nil {
					t.Fatal(err)
				}
			}
			dial(bob, bobCache)
			c1 := e.next()
			dial(alice, tls.NewLRUClientSessionCache(8))
			c2 := e.next()
			dial(bob, bobCache) // resumes c1's session: not asked again
			c3 := e.next()

			if cc := c1.ClientLeg.ClientCert; cc == nil || !cc.Requested || !cc.Presented || cc.Subject != "CN=bob" {
				t.Errorf("c1: client_leg.client_cert %+v, want bob presented on request", cc)
			}
			if cc := c1.UpstreamLeg.ClientCert; cc == nil || !cc.Presented || cc.Subject != "CN=bob" {
				t.Errorf("c1: upstream_leg.client_cert %+v, want bob presented (mirrored)", cc)
			}
			// c2 is alice: its upstream leg resumes, if at all, alice's own
			// session (made by c1's first upstream handshake), never bob's.
			if cc := c2.UpstreamLeg.ClientCert; cc == nil || cc.Subject != "CN=alice" {
				t.Errorf("c2: upstream client_cert %+v: alice's, never bob's", cc)
			}
			if !c3.ClientLeg.Resumed || !c3.UpstreamLeg.Resumed {
				t.Fatalf("c3: client resumed %v, upstream resumed %v", c3.ClientLeg.Resumed, c3.UpstreamLeg.Resumed)
			}
			if cc := c3.ClientLeg.ClientCert; cc == nil || cc.Requested || cc.FromSession != c1.ID || cc.Subject != "CN=bob" {
				t.Errorf("c3: client_leg.client_cert %+v, want not asked, bob's from %s", cc, c1.ID)
			}
			if cc := c3.UpstreamLeg.ClientCert; cc == nil || cc.FromSession == "" || cc.Subject != "CN=bob" {
				t.Errorf("c3: upstream_leg.client_cert %+v, want bob's session", cc)
			}
			if !strings.Contains(c3.Verdict.Text, "not asked for its certificate again: the session carries "+c1.ID+"'s (CN=bob)") {
				t.Errorf("c3: verdict text %q", c3.Verdict.Text)
			}
			// The origin saw full handshakes with alice (the identity
			// tlsresume answers with for this host before it knows the
			// app's) and bob (the app's, once known); everything else
			// resumed the session of the same identity, or (TLS 1.3, when
			// c1's first upstream connection closed before its ticket came)
			// did a full handshake with it again.
			if got := o.identities(); got != "alice,bob" && got != "alice,bob,alice" {
				t.Errorf("the origin saw %s, want alice,bob (and alice again at most)", got)
			}
		})
	}
}
