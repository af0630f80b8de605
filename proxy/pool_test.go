package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestUpstreamPool: with --upstream-reuse pool, client connections one
// after another (each a new TLS connection, over HTTP/1.1 and over h2)
// ride the upstream connection the first one made: the origin sees one
// handshake, the first record is an ordinary first contact, and every
// later record says whose upstream connection carried it (reused_conn,
// upstream_reused), while its client leg is recorded as ever.
func TestUpstreamPool(t *testing.T) {
	for _, alpn := range []string{"http/1.1", "h2"} {
		t.Run(alpn, func(t *testing.T) {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamReuse = ReusePool })
			cache := tls.NewLRUClientSessionCache(8)
			var recs []*inspect.ConnRecord
			for i := range 5 {
				if b := poolGet(t, e, o.addr, cache, alpn); !strings.Contains(b, "hello from origin") {
					t.Fatalf("request %d: %s", i, b)
				}
				recs = append(recs, e.next())
			}
			if n := o.accepted.Load(); n != 1 {
				t.Errorf("the origin saw %d handshakes, want 1 (every later request on the pooled connection)", n)
			}
			first := recs[0]
			if first.UpstreamLeg.Pooled || first.Verdict.Code != inspect.CodeFirstContact {
				t.Errorf("first: pooled %v, verdict %s", first.UpstreamLeg.Pooled, first.Verdict.Code)
			}
			for i, r := range recs[1:] {
				u := r.UpstreamLeg
				if !u.Pooled || u.ReusedConn != first.ID || r.Verdict.Upstream != inspect.CodeUpstreamReused || u.Version == "" {
					t.Errorf("conn %d: pooled %v reused_conn %q version %q verdict %+v", i+2, u.Pooled, u.ReusedConn, u.Version, r.Verdict)
				}
				if !r.ClientLeg.Resumed || r.ClientLeg.ALPN != alpn {
					t.Errorf("conn %d: client leg resumed %v alpn %q", i+2, r.ClientLeg.Resumed, r.ClientLeg.ALPN)
				}
			}
			t.Logf("%s: %s", recs[1].ID, recs[1].Verdict.Text)
		})
	}
}

// poolGet fetches / through the proxy on a new client connection offering
// alpn, with keep-alive (so the origin's connection may be pooled), and
// closes the client connection after the response.
func poolGet(t *testing.T, e *testEnv, target string, cache tls.ClientSessionCache, alpn string) string {
	t.Helper()
	tr := e.proxyTransport(cache)
	tr.DisableKeepAlives = false
	tr.TLSClientConfig.ServerName = "origin.test"
	tr.TLSClientConfig.NextProtos = []string{alpn}
	tr.ForceAttemptHTTP2 = alpn == "h2"
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + target + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestUpstreamPoolClientClose: a client's "Connection: close" ends its own
// connection, not the pooled upstream one (it is hop-by-hop), and a known
// origin is not dialled ahead for a pooled connection.
func TestUpstreamPoolClientClose(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamReuse = ReusePool })
	var ids []string
	for i := range 3 {
		if _, body := e.goGet("origin.test", o.addr, nil, 0); !strings.Contains(body, "hello from origin") {
			t.Fatalf("request %d: %q", i, body)
		}
		r := e.next()
		ids = append(ids, r.ID)
		if i > 0 && r.UpstreamLeg.ReusedConn != ids[0] {
			t.Errorf("%s: reused_conn %q, want %s", r.ID, r.UpstreamLeg.ReusedConn, ids[0])
		}
	}
	if n := o.accepted.Load(); n != 1 {
		t.Errorf("the origin saw %d handshakes, want 1", n)
	}
}

// TestUpstreamPoolRealClients: curl (--http1.1 and --http2, a new process
// each time) and openssl s_client through --upstream-reuse pool to nginx:
// after the first connection every curl rides c1's pooled upstream
// connection; s_client, which offers no ALPN, is paired.
func TestUpstreamPoolRealClients(t *testing.T) {
	curl := tlstest.Need(t, "curl")
	openssl := tlstest.Need(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	dir := t.TempDir()
	files := newOriginFiles(t, dir)
	o := startNginx(t, ctx, files, true, "off", "TLSv1.2 TLSv1.3").(nginxOrigin)
	e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamReuse = ReusePool; c.UpstreamRoots = files.pool })
	url := "https://localhost:" + strings.Split(o.address, ":")[1] + "/"
	runs := [][]string{
		{curl, "-sS", "--max-time", "10", "--cacert", e.ca.CertFile(), "-x", "http://" + e.addr, "--http1.1", url},
		{curl, "-sS", "--max-time", "10", "--cacert", e.ca.CertFile(), "-x", "http://" + e.addr, "--http1.1", url},
		{curl, "-sS", "--max-time", "10", "--cacert", e.ca.CertFile(), "-x", "http://" + e.addr, "--http2", url},
		{curl, "-sS", "--max-time", "10", "--cacert", e.ca.CertFile(), "-x", "http://" + e.addr, "--http2", url},
	}
	var recs []*inspect.ConnRecord
	for i, args := range runs {
		out, _, err := runTool(ctx, nil, "", args[0], args[1:]...)
		if err != nil || !strings.Contains(out, "nginx") {
			t.Fatalf("run %d: %v %q", i, err, out)
		}
		recs = append(recs, e.next())
	}
	// openssl s_client offers no ALPN: the pool's h2 state does not fit it,
	// so it is paired (a handshake of its own), as the README says.
	out, _, err := runTool(ctx, nil, httpGet, openssl, "s_client", "-proxy", e.addr, "-connect", o.address, "-servername", "localhost",
		"-CAfile", e.ca.CertFile(), "-verify_return_error", "-ign_eof")
	if err != nil || !strings.Contains(out, "nginx") {
		t.Fatalf("s_client: %v %s", err, tlstest.Tail(out, 300))
	}
	recs = append(recs, e.next())
	for i, r := range recs {
		u := r.UpstreamLeg
		t.Logf("%s %s alpn %s: pooled %v reused_conn %q verdict %s", r.ID, r.ClientHello.JA4, r.ClientLeg.ALPN, u.Pooled, u.ReusedConn, r.Verdict.Code)
		switch {
		case i == 0 || i == 4:
			if u.Pooled || u.ReusedConn != "" {
				t.Errorf("%s: pooled %v reused_conn %q, want a handshake of its own", r.ID, u.Pooled, u.ReusedConn)
			}
		// curl --http2 offers h2 and http/1.1: its client leg mirrors the
		// pool's http/1.1, and its request rides c1's upstream connection.
		case !u.Pooled || u.ReusedConn != recs[0].ID || r.ClientLeg.ALPN != "http/1.1" || r.Verdict.Upstream != inspect.CodeUpstreamReused:
			t.Errorf("%s: pooled %v reused_conn %q alpn %q upstream verdict %s, want c1's pooled http/1.1 connection",
				r.ID, u.Pooled, u.ReusedConn, r.ClientLeg.ALPN, r.Verdict.Upstream)
		}
	}
}
