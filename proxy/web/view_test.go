package web_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/upstream"
	"github.com/tlsresume/tlsresume/proxy/web"
)

// live is a proxy on 127.0.0.1 in front of a Go TLS 1.3 origin, with the
// live view following its record stream on a port of its own, and the
// records a test subscriber saw, to compare with what the page shows.
type live struct {
	t       testing.TB
	dir     string
	ca      *certs.CA
	cert    tlstest.Cert // the origin's certificate, which the proxy trusts
	proxy   string       // the proxy's address
	origin  string       // the origin's address
	view    string       // the view's base URL
	records chan *inspect.ConnRecord
}

func startLive(t testing.TB, mod func(*web.Config)) *live {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	ca, _, err := certs.Init(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert := tlstest.WriteCert(t, dir)
	origin := tlstest.StartGoServer(t, cert.TLS, tls.VersionTLS13)
	leaf, _ := x509.ParseCertificate(cert.TLS.Certificate[0])
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	up, err := upstream.NewCache(upstream.CacheConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{Issuer: iss, CA: ca, UpstreamRoots: roots, Upstream: up, AutoPassthrough: true,
		Resolver: loopbackResolver})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{t: t, dir: dir, ca: ca, cert: cert, origin: "127.0.0.1:" + strconv.Itoa(origin.Port), records: make(chan *inspect.ConnRecord, 1024)}
	cfg := web.Config{CA: ca, Upstream: up,
		Passthrough: &web.PassthroughControl{List: func() any { return srv.AutoPassthroughs() }, Reset: srv.ResetAutoPassthrough}}
	if mod != nil {
		mod(&cfg)
	}
	view := web.New(cfg)
	go view.Feed(ctx, srv.Subscribe(ctx, 1<<16))
	go func() {
		for ev := range srv.Subscribe(ctx, 1<<16) {
			if ev.Kind == inspect.EventClose {
				l.records <- ev.Record
			}
		}
	}()
	pln := listen(t)
	vln := listen(t)
	l.proxy, l.view = pln.Addr().String(), "http://"+vln.Addr().String()
	served := make(chan struct{}, 2)
	go func() { srv.Serve(ctx, pln); served <- struct{}{} }()
	go func() { view.Serve(ctx, vln); served <- struct{}{} }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		srv.Shutdown(sctx)
		cancel()
		<-served
		<-served
	})
	return l
}

// loopbackResolver resolves names from /etc/hosts (localhost) and asks no
// DNS server: a browser's own requests through the proxy (its update and
// account hosts) fail at the lookup, and no test reaches past loopback.
var loopbackResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, fmt.Errorf("the tests' proxy asks no DNS server (%s)", address)
}}

func listen(t testing.TB) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// next waits for the next record the proxy closed.
func (l *live) next() *inspect.ConnRecord {
	l.t.Helper()
	select {
	case r := <-l.records:
		return r
	case <-time.After(10 * time.Second):
		l.t.Fatal("no record within 10s")
		return nil
	}
}

// openssl runs s_client through the proxy, keeping its session in sess
// (-sess_out on the first run, -sess_in after), and sends one request with
// a User-Agent, so the view names the program.
func (l *live) openssl(bin, sess string, first bool) {
	l.t.Helper()
	flag := "-sess_in"
	if first {
		flag = "-sess_out"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := "GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: openssl-s_client/3\r\n\r\n"
	out, _, err := tlstest.Run(ctx, req, bin, "s_client", "-proxy", l.proxy, "-connect", l.origin, "-servername", "localhost",
		"-CAfile", l.ca.CertFile(), "-verify_return_error", "-tls1_3", "-ign_eof", flag, sess)
	if err != nil || !strings.Contains(out, "tlsresume") {
		l.t.Fatalf("s_client: %v\n%s", err, tlstest.Tail(out, 500))
	}
}

// curl fetches the origin through the proxy: a new process each time, so
// it never has a session to offer.
func (l *live) curl(bin string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, stderr, err := tlstest.Run(ctx, "", bin, "-sS", "--proxy", "http://"+l.proxy, "--cacert", l.ca.CertFile(),
		"--tlsv1.3", "--resolve", "localhost:"+portOf(l.origin)+":127.0.0.1", "https://localhost:"+portOf(l.origin)+"/x")
	if err != nil || !strings.Contains(out, "tlsresume") {
		l.t.Fatalf("curl: %v %s %s", err, out, stderr)
	}
}

func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// get fetches path from the view with extra headers and returns the status
// and body.
func (l *live) get(method, path string, header http.Header) (int, string) {
	l.t.Helper()
	req, err := http.NewRequest(method, l.view+path, nil)
	if err != nil {
		l.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if h := header.Get("Host"); h != "" {
		req.Host = h
	}
	// A stream (/api/events) that should have been refused ends here, not
	// in the test's timeout.
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestGuard: the view refuses a Host that is not its own (DNS rebinding),
// a POST from another site's page, and, with a token, every request
// without it; and it never serves a key.
func TestGuard(t *testing.T) {
	l := startLive(t, nil)
	for _, tt := range []struct {
		name, method, path string
		header             http.Header
		want               int
	}{
		{"page", "GET", "/", nil, 200},
		{"localhost", "GET", "/api/status", http.Header{"Host": {"localhost:1"}}, 200},
		{"rebinding", "GET", "/api/status", http.Header{"Host": {"evil.example:8081"}}, http.StatusMisdirectedRequest},
		{"cross-origin POST", "POST", "/api/upstream/flush", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"cross-site fetch", "POST", "/api/upstream/flush", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"GET cannot flush", "GET", "/api/upstream/flush", nil, http.StatusMethodNotAllowed},
		// Reads too: another site's page (another loopback port is
		// same-site, not same-origin) may not read the API or make the
		// view build a replay; the page's own requests and scripts may.
		{"cross-origin records", "GET", "/api/records", http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"cross-site events", "GET", "/api/events?last_event_id=0", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"same-site events", "GET", "/api/events?last_event_id=0", http.Header{"Sec-Fetch-Site": {"same-site"}}, http.StatusForbidden},
		{"cross-site metrics", "GET", "/metrics", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"cross-origin metrics", "GET", "/metrics", http.Header{"Origin": {"http://127.0.0.1:1"}}, http.StatusForbidden},
		{"same-origin records", "GET", "/api/records", http.Header{"Origin": {l.view}, "Sec-Fetch-Site": {"same-origin"}}, 200},
		{"script metrics", "GET", "/metrics", nil, 200},
		{"typed URL", "GET", "/api/records", http.Header{"Sec-Fetch-Site": {"none"}}, 200},
		{"link to the page", "GET", "/", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"navigate"}}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := l.get(tt.method, tt.path, tt.header); got != tt.want {
				t.Errorf("%s %s: %d, want %d: %s", tt.method, tt.path, got, tt.want, body)
			}
		})
	}
	for _, f := range certs.Formats() {
		code, body := l.get("GET", "/ca/"+f.FileName(), nil)
		if code != 200 || strings.Contains(body, "PRIVATE KEY") {
			t.Errorf("/ca/%s: %d, or it holds a key", f.FileName(), code)
		}
	}

	tl := startLive(t, func(c *web.Config) { c.Token = "s3cret" })
	if code, _ := tl.get("GET", "/api/status", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := tl.get("GET", "/?token=wrong", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	// The scheme is case-insensitive (RFC 9110 §11.1).
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret", "BEARER  s3cret"} {
		if code, _ := tl.get("GET", "/api/status", http.Header{"Authorization": {auth}}); code != 200 {
			t.Errorf("Authorization: %s: %d, want 200", auth, code)
		}
	}
	if code, _ := tl.get("GET", "/api/status", http.Header{"Authorization": {"Basic s3cret"}}); code != http.StatusUnauthorized {
		t.Errorf("Authorization: Basic s3cret: %d, want 401", code)
	}
	resp, err := http.Get(tl.view + "/?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		cookie = c
	}
	if resp.StatusCode != 200 || cookie == nil || !cookie.HttpOnly {
		t.Fatalf("token in the URL: %d, cookie %+v", resp.StatusCode, cookie)
	}
	if code, _ := tl.get("GET", "/api/status", http.Header{"Cookie": {cookie.String()}}); code != 200 {
		t.Errorf("the cookie: %d, want 200", code)
	}
}

// TestMetricsAgreeWithRecords: after real clients, /metrics counts what
// the records say, connection by connection.
func TestMetricsAgreeWithRecords(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	l := startLive(t, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var recs []*inspect.ConnRecord
	for i := range 3 {
		l.openssl(openssl, sess, i == 0)
		recs = append(recs, l.next())
	}
	want := map[string]int{}
	for _, r := range recs {
		want[fmt.Sprintf(`tlsresume_connections_total{source="%s",verdict="%s"}`, r.Source, r.Verdict.Code)]++
		want[fmt.Sprintf(`tlsresume_client_handshakes_total{resumed="%v",version="%s"}`, r.ClientLeg.Resumed, r.ClientLeg.Version)]++
		want[fmt.Sprintf(`tlsresume_upstream_handshakes_total{cache="%s",resumed="%v"}`, r.UpstreamLeg.Cache, r.UpstreamLeg.Resumed)]++
	}
	want[`tlsresume_handshake_duration_seconds_count{leg="client"}`] = len(recs)
	want[`tlsresume_open_connections`] = 0
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, body := l.get("GET", "/metrics", nil)
		got := map[string]int{}
		for line := range strings.Lines(body) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !strings.HasPrefix(k, "#") {
				f, _ := strconv.ParseFloat(v, 64)
				got[k] = int(f)
			}
		}
		bad := ""
		for k, v := range want {
			if got[k] != v {
				bad += fmt.Sprintf("\n%s = %d, want %d", k, got[k], v)
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics disagrees with the records:%s\n%s", bad, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRecordsAPI: the records API pages through the history in the --log
// schema, and the SSE stream replays from Last-Event-ID.
func TestRecordsAPI(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	l := startLive(t, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var ids []string
	for i := range 3 {
		l.openssl(openssl, sess, i == 0)
		ids = append(ids, l.next().ID)
	}
	var got []string
	since := "0"
	for range 5 {
		var p struct {
			Records   []*inspect.ConnRecord `json:"records"`
			Next      uint64                `json:"next"`
			LastEvent uint64                `json:"last_event"`
		}
		_, body := l.get("GET", "/api/records?limit=2&since="+since, nil)
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			if r.Verdict.Code == "" || r.ClientHello == nil {
				t.Errorf("record %s lacks its verdict or hello: %s", r.ID, body)
			}
			got = append(got, r.ID)
		}
		if len(p.Records) == 0 {
			break
		}
		since = strconv.FormatUint(p.Next, 10)
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("paged records %v, want %v", got, ids)
	}
	// Replay: a client that saw event 2 (the first connection's close) gets
	// the two connections changed since, each by its latest event.
	req, _ := http.NewRequest("GET", l.view+"/api/events", nil)
	req.Header.Set("Last-Event-ID", "2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64<<10)
	n, _ := io.ReadAtLeast(resp.Body, buf, 1)
	for n < len(buf) && strings.Count(string(buf[:n]), "event: close") < 2 {
		m, err := resp.Body.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	if c := strings.Count(string(buf[:n]), "event: close"); c != 2 || strings.Contains(string(buf[:n]), `"id":"c1"`) {
		t.Errorf("replay after event 2 sent %d close events, want 2 (c2, c3):\n%s", c, buf[:n])
	}
}

// TestAutoPassthroughAPI: a client that rejects tlsresume's certificate
// (openssl s_client verifying against the system's CAs only) is listed by
// GET /api/passthrough with what triggered it, and POST
// /api/passthrough/reset intercepts it again.
func TestAutoPassthroughAPI(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	l := startLive(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// -verify_return_error with the system's CAs only: s_client sends an
	// unknown_ca alert and ends.
	tlstest.Run(ctx, "", openssl, "s_client", "-proxy", l.proxy, "-connect", l.origin, "-servername", "localhost",
		"-verify_return_error", "-tls1_3")
	r := l.next()
	if r.Verdict.Code != inspect.CodeClientRejectedCert {
		t.Fatalf("verdict %+v", r.Verdict)
	}
	code, body := l.get("GET", "/api/passthrough", nil)
	var list []proxy.AutoPass
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 1 ||
		list[0].Host != "localhost" || !strings.Contains(list[0].Reason, "with alert") || !strings.Contains(list[0].Reason, r.ID) {
		t.Fatalf("GET /api/passthrough: %d %s", code, body)
	}
	if code, body := l.get("POST", "/api/passthrough/reset", nil); code != 200 || !strings.Contains(body, `"cleared":1`) {
		t.Errorf("reset: %d %s", code, body)
	}
	if code, body := l.get("GET", "/api/passthrough", nil); code != 200 || strings.TrimSpace(body) != "null" && strings.TrimSpace(body) != "[]" {
		t.Errorf("after the reset: %d %s", code, body)
	}
}
