package proxy

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// These tests put real clients at failures a person meets first, and check
// that the record and what the client prints say what fixes them.

// curlThrough runs curl through the proxy at url, trusting ca, and returns
// what it printed (the body on stdout, its error on stderr) and its error.
func curlThrough(t *testing.T, ctx context.Context, proxyURL, ca, url string, extra ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := tlstest.Need(t, "curl")
	args := append([]string{"-sS", "--max-time", "10", "--cacert", ca, "-x", proxyURL, url}, extra...)
	return runTool(ctx, nil, "", bin, args...)
}

// recordJSON is a record as its --log line says it.
func recordJSON(t *testing.T, r *inspect.ConnRecord) string {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLabOriginFix: an origin whose certificate a lab CA signed (openssl
// s_server with its own CA) fails verification; the 502 page curl prints
// and the record's verdict name the flags that fix it.
func TestLabOriginFix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files := newOriginFiles(t, t.TempDir())
	o := startOpenSSLOrigin(t, ctx, files)
	e := startProxy(t, tempDir(t), nil) // trusts the test origins' CA, not this one
	_, port, _ := net.SplitHostPort(o.addr())
	body, _, err := curlThrough(t, ctx, "http://"+e.addr, e.ca.CertFile(), "https://localhost:"+port+"/")
	if err != nil {
		t.Fatal(err)
	}
	r := e.next()
	line := recordJSON(t, r)
	t.Logf("curl printed:\n%s", body)
	for _, want := range []string{"certificate signed by unknown authority", "--upstream-ca", "--insecure-upstream"} {
		if !strings.Contains(body, want) {
			t.Errorf("the 502 page lacks %q", want)
		}
		if !strings.Contains(line, want) {
			t.Errorf("the record lacks %q: verdict %+v", want, r.Verdict)
		}
	}
	if r.Verdict.Code != inspect.CodeUpstreamFailed {
		t.Errorf("verdict %s", r.Verdict.Code)
	}
}

// TestPassedThroughClientRejectsOrigin: curl resumes only by session ID
// over TLS 1.2, so tlsresume passes it through to a TLS 1.2 origin; curl,
// trusting only tlsresume's CA, then rejects the origin's own certificate
// with a plaintext alert. The record says so, and what to do.
func TestPassedThroughClientRejectsOrigin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files := newOriginFiles(t, t.TempDir())
	o := startOpenSSLOrigin(t, ctx, files, "-tls1_2")
	e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamRoots = files.pool })
	_, port, _ := net.SplitHostPort(o.addr())
	if _, stderr, err := curlThrough(t, ctx, "http://"+e.addr, e.ca.CertFile(), "https://localhost:"+port+"/"); err == nil {
		t.Fatal("curl trusted the origin's certificate")
	} else {
		t.Logf("curl: %s", strings.TrimSpace(stderr))
	}
	r := e.next()
	line := recordJSON(t, r)
	if r.Passthrough == "" || string(r.Verdict.Code) != "passthrough_rejected_certificate" ||
		!strings.Contains(line, `"client_alert":"unknown_ca"`) || !strings.Contains(line, "--session-id-clients intercept") {
		t.Errorf("%s: passthrough %q, verdict %s: %s\n%s", r.ID, r.Passthrough, r.Verdict.Code, r.Verdict.Text, line)
	}
}

// TestTLSToProxyPort: curl -x https://PROXY speaks TLS to the proxy port,
// which speaks plain HTTP. The connection is recorded, with an error that
// says so and the fix, where nothing was recorded before.
func TestTLSToProxyPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	_, port, _ := net.SplitHostPort(o.addr)
	_, stderr, err := curlThrough(t, ctx, "https://"+e.addr, e.ca.CertFile(), "https://localhost:"+port+"/")
	if err == nil {
		t.Fatal("curl got through a proxy it spoke TLS to")
	}
	t.Logf("curl: %s", strings.TrimSpace(stderr))
	select {
	case r := <-e.got:
		line := recordJSON(t, r)
		for _, want := range []string{"speaks TLS to the proxy itself", "use -x http://", "curl -x http://HOST:PORT"} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: the record lacks %q: error %q, verdict %+v", r.ID, want, r.Error, r.Verdict)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record of the connection")
	}
}
