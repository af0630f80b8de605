package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// Seed 001 (Apple's QA1727) with real clients and real origins: an app
// that uses one client identity and then another on one server. openssl
// s_client and curl present alice, then bob, then alice again offering
// alice's session, through tlsresume to an origin that requires (or, with
// s_server -verify, requests) a client certificate: openssl s_server and
// nginx with ssl_verify_client, over TLS 1.2 and 1.3. The origin's own
// page says which identity it saw on each connection, and whether that
// connection resumed; the records must say the same, and no identity may
// ever reach the origin on a connection made with the other.

// identityFiles is a client identity written as PEM for a real client.
type identityFiles struct{ cn, cert, key string }

func writeIdentity(t *testing.T, dir, cn string, c tls.Certificate) identityFiles {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	f := identityFiles{cn: cn, cert: filepath.Join(dir, cn+".pem"), key: filepath.Join(dir, cn+".key")}
	writePEM(t, f.cert, "CERTIFICATE", c.Certificate[0])
	writePEM(t, f.key, "PRIVATE KEY", keyDER)
	return f
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// certOrigin is a real origin that asks for a client certificate; seen
// reads, from one response body, the identity the origin saw on that
// connection ("" for none) and whether the connection resumed.
type certOrigin struct {
	address string
	seen    func(t *testing.T, page string) (cn string, resumed bool)
}

// s_server -www prints the peer certificate it holds for the connection
// (from the resumed session too) and "New, ..." or "Reused, ...".
var sserverPeer = regexp.MustCompile(`(?m)Subject: CN\s?=\s?(\w+)`)

func startCertSServer(t *testing.T, ctx context.Context, files originFiles, clientCA, verify, version string) certOrigin {
	t.Helper()
	o := startOpenSSLOrigin(t, ctx, files, verify, "1", "-CAfile", clientCA, version)
	return certOrigin{address: o.addr(), seen: func(t *testing.T, page string) (string, bool) {
		t.Helper()
		_, per := opensslOrigin{}.resumed(t, []string{page})
		if strings.Contains(page, "no client certificate available") {
			return "", per[0]
		}
		m := sserverPeer.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("s_server's page names no client certificate: %s", tlstest.Tail(page, 400))
		}
		return m[1], per[0]
	}}
}

// startCertNginx runs nginx with ssl_verify_client on; its page is the
// client's subject and $ssl_session_reused.
func startCertNginx(t *testing.T, ctx context.Context, files originFiles, clientCA, protocols string) certOrigin {
	t.Helper()
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlstest.FreePort(t)))
	runNginx(t, ctx, dir, addr, fmt.Sprintf(`
	access_log off;
	server {
		listen %[1]s ssl;
		ssl_certificate %[2]s;
		ssl_certificate_key %[3]s;
		ssl_client_certificate %[4]s;
		ssl_verify_client on;
		ssl_session_tickets on;
		ssl_protocols %[5]s;
		location / { return 200 "identity=[$ssl_client_s_dn] reused=[$ssl_session_reused]\n"; }
	}
`, addr, files.cert, files.key, clientCA, protocols))
	page := regexp.MustCompile(`identity=\[(?:CN=(\w+))?\] reused=\[(r|\.)\]`)
	return certOrigin{address: addr, seen: func(t *testing.T, body string) (string, bool) {
		t.Helper()
		m := page.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("nginx's page: %s", tlstest.Tail(body, 400))
		}
		return m[1], m[2] == "r"
	}}
}

// certClientRun is one connection of a real client with an identity.
type certClientRun struct {
	id            identityFiles
	clientResumed *bool // what the client said; nil when it does not say
	page          string
}

// certClient runs a real client with id through the proxy. openssl saves
// its session to sess, or offers the one saved there when resume is set.
type certClient func(t *testing.T, ctx context.Context, proxyAddr, ca, origin string, id identityFiles, sess string, resume bool) certClientRun

func opensslCertClient(version string) certClient {
	return func(t *testing.T, ctx context.Context, proxyAddr, ca, origin string, id identityFiles, sess string, resume bool) certClientRun {
		t.Helper()
		openssl := tlstest.Need(t, "openssl")
		sessFlag := map[bool]string{false: "-sess_out", true: "-sess_in"}[resume]
		stdout, _, err := runTool(ctx, nil, httpGet, openssl, "s_client", "-connect", origin, "-servername", "localhost",
			"-proxy", proxyAddr, "-CAfile", ca, "-verify_return_error", version, "-ign_eof",
			"-cert", id.cert, "-key", id.key, sessFlag, sess)
		if err != nil {
			t.Fatal(err)
		}
		head, page, ok := strings.Cut(stdout, "\nHTTP/1.")
		m := opensslSession.FindStringSubmatch(head)
		if !ok || m == nil {
			t.Fatalf("s_client: no session line or no response: %s", tlstest.Tail(stdout, 600))
		}
		return certClientRun{id: id, clientResumed: boolp(m[1] == "Reused"), page: page}
	}
}

// curlCertClient fetches once per run with --cert: curl keeps no session
// across runs, so each run is a full handshake on the client leg (resume
// is ignored), which is how a command-line client changes identity.
func curlCertClient(versionArgs ...string) certClient {
	return func(t *testing.T, ctx context.Context, proxyAddr, ca, origin string, id identityFiles, _ string, _ bool) certClientRun {
		t.Helper()
		curl := tlstest.Need(t, "curl")
		_, port, _ := net.SplitHostPort(origin)
		args := append([]string{"-sS", "--max-time", "20", "--cacert", ca, "--proxy", "http://" + proxyAddr,
			"--cert", id.cert, "--key", id.key}, versionArgs...)
		stdout, _, err := runTool(ctx, nil, "", curl, append(args, "https://localhost:"+port+"/")...)
		if err != nil {
			t.Fatal(err)
		}
		return certClientRun{id: id, page: stdout}
	}
}

func TestRealClientCertificates(t *testing.T) {
	type origin func(t *testing.T, ctx context.Context, files originFiles, clientCA string) certOrigin
	sserver := func(verify, version string) origin {
		return func(t *testing.T, ctx context.Context, f originFiles, ca string) certOrigin {
			return startCertSServer(t, ctx, f, ca, verify, version)
		}
	}
	nginx := func(protocols string) origin {
		return func(t *testing.T, ctx context.Context, f originFiles, ca string) certOrigin {
			return startCertNginx(t, ctx, f, ca, protocols)
		}
	}
	cases := []struct {
		name   string
		client certClient
		origin origin
		// resumes: the third connection offers alice's session and must
		// resume it on both legs.
		resumes bool
		// forHost: alice is also the identity configured for the host
		// (--upstream-client-cert localhost=alice). Without one, a TLS 1.2
		// origin that requires a certificate fails tlsresume's upstream
		// handshake before the client was asked for its own
		// (TestOriginAsksWithoutIdentity); a TLS 1.3 origin's refusal
		// comes after tlsresume's handshake, which then asks the client.
		forHost bool
		// intercept: --session-id-clients intercept, for curl over TLS
		// 1.2 (no session_ticket extension), else passed through.
		intercept bool
	}{
		{name: "openssl-tls1.3/s_server-Verify", client: opensslCertClient("-tls1_3"), origin: sserver("-Verify", "-tls1_3"), resumes: true},
		{name: "openssl-tls1.2/s_server-Verify", client: opensslCertClient("-tls1_2"), origin: sserver("-Verify", "-tls1_2"), resumes: true, forHost: true},
		{name: "openssl-tls1.3/s_server-verify", client: opensslCertClient("-tls1_3"), origin: sserver("-verify", "-tls1_3"), resumes: true},
		{name: "openssl-tls1.2/s_server-verify", client: opensslCertClient("-tls1_2"), origin: sserver("-verify", "-tls1_2"), resumes: true},
		{name: "openssl-tls1.3/nginx-verify-client", client: opensslCertClient("-tls1_3"), origin: nginx("TLSv1.3"), resumes: true},
		{name: "openssl-tls1.2/nginx-verify-client", client: opensslCertClient("-tls1_2"), origin: nginx("TLSv1.2"), resumes: true},
		{name: "curl-tls1.3/nginx-verify-client", client: curlCertClient("--tlsv1.3"), origin: nginx("TLSv1.2 TLSv1.3")},
		{name: "curl-tls1.2/nginx-verify-client", client: curlCertClient("--tls-max", "1.2"), origin: nginx("TLSv1.2 TLSv1.3"), forHost: true, intercept: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			dir := t.TempDir()
			files := newOriginFiles(t, dir)
			pki := newClientPKI(t)
			clientCA := filepath.Join(dir, "client-ca.pem")
			writePEM(t, clientCA, "CERTIFICATE", pki.ca.Raw)
			aliceCert, bobCert := pki.identity(t, "alice"), pki.identity(t, "bob")
			alice, bob := writeIdentity(t, dir, "alice", aliceCert), writeIdentity(t, dir, "bob", bobCert)
			o := tc.origin(t, ctx, files, clientCA)
			e := startProxy(t, tempDir(t), func(c *Config) {
				c.UpstreamRoots = files.pool
				// tlsresume holds both identities: whichever the client
				// presents goes upstream unchanged.
				pattern := map[bool]string{true: "localhost", false: "none.invalid"}[tc.forHost]
				c.UpstreamClientCerts = []UpstreamIdentity{{Pattern: pattern, Cert: aliceCert}, {Pattern: "none.invalid", Cert: bobCert}}
				if tc.intercept {
					c.SessionIDClients = "intercept"
				}
			})
			client := tc.client
			aliceSess, bobSess := filepath.Join(dir, "alice.sess"), filepath.Join(dir, "bob.sess")
			runs := []certClientRun{
				client(t, ctx, e.addr, e.ca.CertFile(), o.address, alice, aliceSess, false),
			}
			c1 := e.next()
			runs = append(runs, client(t, ctx, e.addr, e.ca.CertFile(), o.address, bob, bobSess, false))
			c2 := e.next()
			runs = append(runs, client(t, ctx, e.addr, e.ca.CertFile(), o.address, alice, aliceSess, tc.resumes))
			c3 := e.next()
			recs := []*inspect.ConnRecord{c1, c2, c3}

			for i, r := range recs {
				run := runs[i]
				cn, originResumed := o.seen(t, run.page)
				t.Logf("conn %d %s as %s: verdict %s; client leg resumed %v client_cert %+v; upstream resumed %v client_cert %+v; origin saw %q resumed %v",
					i+1, r.ID, run.id.cn, r.Verdict.Code, r.ClientLeg.Resumed, r.ClientLeg.ClientCert,
					r.UpstreamLeg.Resumed, r.UpstreamLeg.ClientCert, cn, originResumed)
				// The identity the origin saw is the one the client presented,
				// and the record says so on both legs.
				if cn != run.id.cn {
					t.Errorf("conn %d: the client presented %s, the origin saw %q", i+1, run.id.cn, cn)
				}
				// A resumed leg presents nothing: its session carries the
				// identity of the connection that made it.
				want := "CN=" + run.id.cn
				carries := func(cc *inspect.ClientCert, resumed bool) bool {
					return cc != nil && cc.Subject == want && cc.Presented != resumed && (cc.FromSession != "") == resumed
				}
				if cc := r.ClientLeg.ClientCert; !carries(cc, r.ClientLeg.Resumed) {
					t.Errorf("conn %d: client_leg.client_cert %+v, want %s (resumed %v)", i+1, cc, want, r.ClientLeg.Resumed)
				}
				if cc := r.UpstreamLeg.ClientCert; !carries(cc, r.UpstreamLeg.Resumed) {
					t.Errorf("conn %d: upstream_leg.client_cert %+v, want %s (resumed %v)", i+1, cc, want, r.UpstreamLeg.Resumed)
				}
				if r.UpstreamLeg.Resumed != originResumed {
					t.Errorf("conn %d: upstream_leg.resumed %v, the origin says %v", i+1, r.UpstreamLeg.Resumed, originResumed)
				}
				if run.clientResumed != nil && *run.clientResumed != r.ClientLeg.Resumed {
					t.Errorf("conn %d: client_leg.resumed %v, the client says %v", i+1, r.ClientLeg.Resumed, *run.clientResumed)
				}
			}
			// bob's connection never resumes alice's session, on either leg.
			if c2.ClientLeg.Resumed || c2.UpstreamLeg.Resumed {
				t.Errorf("bob's connection resumed (client %v, upstream %v): alice's session crossed to bob",
					c2.ClientLeg.Resumed, c2.UpstreamLeg.Resumed)
			}
			if cc := c1.ClientLeg.ClientCert; cc == nil || !cc.Requested {
				t.Errorf("conn 1: client_leg.client_cert %+v: the origin asked, so tlsresume must ask the client", cc)
			}
			if !tc.resumes {
				return
			}
			// alice again, offering her session: resumed on both legs, not
			// asked for her certificate again, carrying c1's.
			if !c3.ClientLeg.Resumed || !c3.UpstreamLeg.Resumed {
				t.Fatalf("conn 3: client resumed %v, upstream resumed %v; want both", c3.ClientLeg.Resumed, c3.UpstreamLeg.Resumed)
			}
			if cc := c3.ClientLeg.ClientCert; cc.Requested || cc.FromSession != c1.ID {
				t.Errorf("conn 3: client_leg.client_cert %+v, want not asked again, carrying %s's", cc, c1.ID)
			}
			if !strings.Contains(c3.Verdict.Text, "not asked for its certificate again: the session carries "+c1.ID+"'s (CN=alice)") {
				t.Errorf("conn 3: verdict text %q", c3.Verdict.Text)
			}
		})
	}
}
