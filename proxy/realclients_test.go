package proxy

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// These tests put real clients (OpenSSL, curl, GnuTLS, Python, Chromium)
// and real origins (nginx, openssl s_server, a Go server) on both sides of
// the proxy, on 127.0.0.1, and check each record against witnesses that
// are not tlsresume: the ClientHello facts, the client leg's resumption
// and version, and the byte counts against tshark's dissection of a
// capture of the client→proxy leg; client_leg.resumed against what the
// client reports; upstream_leg.resumed against what the origin counted.
// The verdict of each connection is then the expected one.

// wantConn is the verdict one connection must get.
type wantConn struct{ code, client, upstream inspect.VerdictCode }

var (
	wantFirst   = wantConn{inspect.CodeFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamFirstContact}
	wantResumed = wantConn{inspect.CodeBothResumed, inspect.CodeClientResumed, inspect.CodeUpstreamResumed}
)

var (
	// wantPassed: a session-ID client, passed through; the real server did
	// a full handshake, then resumed it (passthroughResumed).
	wantPassed        = wantConn{inspect.CodePassthroughNotResumed, inspect.CodePassthroughNotResumed, inspect.CodeUpstreamNotAttempted}
	wantPassedResumed = wantConn{inspect.CodePassthroughResumed, inspect.CodePassthroughResumed, inspect.CodeUpstreamNotAttempted}
)

type realCase struct {
	name   string
	client string // the binary
	run    func(*clientRun, string) []clientReport
	origin func(*testing.T, context.Context, originFiles) realOrigin
	// want lists each connection's verdict in order; nil for a browser,
	// which opens the connections it likes (checkBrowser).
	want []wantConn
	// hrr: every connection starts with a HelloRetryRequest from tlsresume.
	hrr bool
	// direct also runs the client straight at the origin, where it must
	// resume its second connection: what the origin does for a client
	// that tlsresume's upstream leg cannot get.
	direct bool
	// passed: tlsresume passes the client through to the origin (a
	// session-ID client), so the client must trust the origin's
	// certificate as well as tlsresume's CA.
	passed bool
}

func goTLSOrigin(t *testing.T, _ context.Context, _ originFiles) realOrigin {
	return goOrigin{startOrigin(t, nil)}
}

func opensslServer(args ...string) func(*testing.T, context.Context, originFiles) realOrigin {
	return func(t *testing.T, ctx context.Context, f originFiles) realOrigin {
		return startOpenSSLOrigin(t, ctx, f, args...)
	}
}

func nginxServer(tickets bool, cache, protocols string) func(*testing.T, context.Context, originFiles) realOrigin {
	return func(t *testing.T, ctx context.Context, f originFiles) realOrigin {
		return startNginx(t, ctx, f, tickets, cache, protocols)
	}
}

func pageServer(t *testing.T, _ context.Context, f originFiles) realOrigin {
	return startPageOrigin(t, f)
}

var realCases = []realCase{
	{name: "openssl-tls1.3/go-origin", client: "openssl", run: opensslClient("-tls1_3"),
		origin: goTLSOrigin, want: []wantConn{wantFirst, wantResumed}},
	// The client's only key share is for ffdhe2048, which Go does not do:
	// tlsresume asks again for X25519 (a HelloRetryRequest), and the
	// second connection offers its PSK in both hellos. The record keeps
	// the first hello, as tshark's first one.
	{name: "openssl-tls1.3-hrr/go-origin", client: "openssl",
		run: opensslClient("-tls1_3", "-groups", "ffdhe2048:X25519"), origin: goTLSOrigin,
		want: []wantConn{wantFirst, wantResumed}, hrr: true},
	{name: "openssl-tls1.2/s_server-tls1.2-tickets", client: "openssl", run: opensslClient("-tls1_2"),
		origin: opensslServer("-tls1_2"), want: []wantConn{wantFirst, wantResumed}},
	// A TLS 1.2 client without tickets can resume only by session ID, which
	// Go's TLS server never issues: tlsresume passes it through
	// (--session-id-clients passthrough), and the real server resumes it as
	// it does directly.
	{name: "openssl-tls1.2-no_ticket/s_server-tls1.2-no_ticket", client: "openssl",
		run: opensslClient("-tls1_2", "-no_ticket"), origin: opensslServer("-tls1_2", "-no_ticket"),
		want: []wantConn{wantPassed, wantPassedResumed}, direct: true, passed: true},
	{name: "openssl-tls1.2-no_ticket/nginx-no-tickets-session-cache", client: "openssl",
		run: opensslClient("-tls1_2", "-no_ticket"), origin: nginxServer(false, "shared:S:1m", "TLSv1.2"),
		want: []wantConn{wantPassed, wantPassedResumed}, direct: true, passed: true},
	{name: "python-tls1.3/s_server-tls1.3", client: "python3", run: pythonClient("1.3"),
		origin: opensslServer("-tls1_3"), want: []wantConn{wantFirst, wantResumed}},
	// nginx resumes by session ID only: Go's client cannot, so the upstream
	// leg never resumes, and tlsresume mirrors it by issuing no tickets to
	// the client, from the first connection on: that TLS 1.2 upstream
	// handshake carried no NewSessionTicket.
	{name: "python-tls1.2/nginx-no-tickets-session-cache", client: "python3", run: pythonClient("1.2"),
		origin: nginxServer(false, "shared:S:1m", "TLSv1.2"),
		want: []wantConn{{inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamFirstContact},
			{inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamNoTicket}}, direct: true},
	{name: "curl/nginx-tickets-tls1.3", client: "curl", run: curlClient,
		origin: nginxServer(true, "off", "TLSv1.2 TLSv1.3"), want: []wantConn{wantFirst, wantResumed}},
	// curl sends no session_ticket extension (it sets SSL_OP_NO_TICKET), so
	// over TLS 1.2 it resumes only by session ID: nginx's session cache
	// resumes it directly. curl offers TLS 1.3 too, so tlsresume learns
	// that the origin speaks only TLS 1.2 from its upstream handshake, then
	// passes the client through; the second connection offers the session
	// ID nginx issued and is passed through at once.
	{name: "curl/nginx-no-tickets-tls1.2", client: "curl", run: curlClient,
		origin: nginxServer(false, "shared:S:1m", "TLSv1.2"),
		want:   []wantConn{wantPassed, wantPassedResumed}, direct: true, passed: true},
	{name: "gnutls-tls1.2/nginx-tickets-tls1.2", client: "gnutls-cli", run: gnutlsClient("1.2"),
		origin: nginxServer(true, "off", "TLSv1.2"), want: []wantConn{wantFirst, wantResumed}},
	// GnuTLS without tickets resumes by session ID, passed through as
	// OpenSSL's and curl's are.
	{name: "gnutls-tls1.2-no-tickets/nginx-no-tickets-session-cache", client: "gnutls-cli",
		run: gnutlsClient("1.2", ":%NO_TICKETS_TLS12"), origin: nginxServer(false, "shared:S:1m", "TLSv1.2"),
		want: []wantConn{wantPassed, wantPassedResumed}, direct: true, passed: true},
	{name: "gnutls-tls1.3/s_server-tls1.3", client: "gnutls-cli", run: gnutlsClient("1.3"),
		origin: opensslServer("-tls1_3"), want: []wantConn{wantFirst, wantResumed}},
	// A second connection while the first is still open and idle, as a
	// browser's preconnected socket: nginx sent its TLS 1.3 tickets right
	// after the first upstream handshake, and tlsresume reads them as they
	// arrive rather than with the first response, so the second connection
	// resumes both legs, as the same client does straight at nginx (direct).
	{name: "openssl-tls1.3-overlap/nginx-tickets-tls1.3", client: "openssl", run: opensslOverlap("-tls1_3"),
		origin: nginxServer(true, "off", "TLSv1.2 TLSv1.3"), want: []wantConn{wantFirst, wantResumed}, direct: true},
	{name: "chromium/go-page-origin", client: "chromium", run: chromiumClient, origin: pageServer},
}

func TestRealClients(t *testing.T) {
	for _, tc := range realCases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			bin := tlstest.Need(t, tc.client)
			tlstest.Need(t, "tcpdump")
			tlstest.Need(t, "tshark")
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			dir := t.TempDir()
			files := newOriginFiles(t, dir)
			o := tc.origin(t, ctx, files)
			roots := files.pool.Clone()
			leaf, _ := x509.ParseCertificate(originCert.Certificate[0])
			roots.AddCert(leaf) // startOrigin's certificate
			e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamRoots = roots })
			_, proxyPort, _ := net.SplitHostPort(e.addr)
			pcap := filepath.Join(dir, "client-leg.pcap")
			capt := startCapture(t, ctx, atoi(proxyPort), pcap)

			_, originPort, _ := net.SplitHostPort(o.addr())
			col := &collector{e: e, suffix: ":" + originPort}
			ca := e.ca.CertFile()
			if tc.passed {
				ca = bundle(t, dir, e.ca.CertFile(), files.cert)
			}
			cr := &clientRun{t: t, ctx: ctx, dir: dir, proxy: e.addr, ca: ca, origin: o.addr(),
				between: func() { col.wait(t, len(col.got)+1) }}
			reports := tc.run(cr, bin)
			if tc.want != nil {
				col.wait(t, len(tc.want))
			}
			col.quiet(500 * time.Millisecond) // a browser's last connections, and any stray extra
			if err := capt.stop(); err != nil {
				t.Fatal(err)
			}
			wires := dissect(t, ctx, pcap, atoi(proxyPort))
			bytes := tunnelBytes(t, ctx, pcap, atoi(proxyPort))
			recs := col.sorted()
			for i, r := range recs {
				_, p, _ := net.SplitHostPort(r.ClientAddr)
				checkRecord(t, i, r, wires[atoi(p)], bytes[atoi(p)], tc.hrr)
				resumed, _ := clientSide(r)
				t.Logf("conn %d %s: verdict %s (client %s, upstream %s); client resumed %v, origin resumed %v, ja4 %s",
					i, r.ID, r.Verdict.Code, r.Verdict.Client, r.Verdict.Upstream, resumed, originResumed(r), r.ClientHello.JA4)
			}
			if tc.want == nil {
				checkBrowser(t, recs, o)
			} else {
				checkSequence(t, recs, reports, tc.want, o)
			}
			if tc.direct {
				checkDirect(t, tc, bin, o, files)
			}
			t.Logf("%s: %d connections in %v", tc.name, len(recs), time.Since(start).Round(time.Millisecond))
		})
	}
}

// checkRecord compares a record with the capture: its ClientHello with
// tshark's, client_leg.resumed and the version with what tlsresume
// answered, and the byte counts with the TCP streams.
func checkRecord(t *testing.T, i int, r *inspect.ConnRecord, w *wireConn, b wireBytes, hrr bool) {
	t.Helper()
	if w == nil || w.hello == nil || r.ClientHello == nil {
		t.Fatalf("conn %d %s from %s: no ClientHello in the record (%v) or in the capture (%v)", i, r.ID, r.ClientAddr, r.ClientHello != nil, w != nil)
	}
	ch, h := r.ClientHello, w.hello
	check := func(field string, rec, wire any) {
		if fmt.Sprint(rec) != fmt.Sprint(wire) {
			t.Errorf("conn %d %s: %s: record %v, tshark %v", i, r.ID, field, rec, wire)
		}
	}
	ja4, _ := h.JA4()
	check("sni", r.SNI, h.SNI)
	check("alpn", ch.ALPN, h.ALPN)
	check("cipher_suites", ch.CipherSuites, h.CipherSuites)
	check("extensions", ch.Extensions, h.Extensions)
	check("supported_versions", ch.SupportedVersions, h.SupportedVersions)
	check("session_ticket.offered", ch.SessionTicket.Offered, h.Has(35))
	check("session_ticket.len", ch.SessionTicket.Len, h.ExtensionLens[35]) // 0 when absent
	check("pre_shared_key.offered", ch.PreSharedKey.Offered, h.Has(41))
	check("pre_shared_key identities", len(ch.PreSharedKey.Identities), len(h.PSKIdentityLens))
	check("psk_key_exchange_modes present", ch.PSKKeyExchangeModes != nil, h.PSKModes != nil)
	check("psk_key_exchange_modes", ch.PSKKeyExchangeModes, h.PSKModes)
	check("early_data", ch.EarlyData, h.Has(42))
	check("ja4", ch.JA4, ja4)
	if r.Passthrough == "" && (r.ClientLeg == nil || r.ClientLeg.Error != "" || r.UpstreamLeg == nil || r.UpstreamLeg.Error != "") ||
		r.Passthrough != "" && (r.ServerHello == nil || !r.ServerHello.Complete) {
		t.Fatalf("conn %d %s: client leg %+v, upstream leg %+v, passthrough %q", i, r.ID, r.ClientLeg, r.UpstreamLeg, r.Passthrough)
	}
	resumed, version := clientSide(r)
	if resumed != w.resumed {
		t.Errorf("conn %d %s: the record says the client's handshake resumed=%v, the capture shows %v", i, r.ID, resumed, w.resumed)
	}
	if want := map[int]string{0x0304: "1.3", 0x0303: "1.2"}[w.version]; version != want {
		t.Errorf("conn %d %s: the record says version %s, the capture shows %#x", i, r.ID, version, w.version)
	}
	if w.hrr != hrr {
		t.Errorf("conn %d %s: the capture shows HelloRetryRequest %v, want %v", i, r.ID, w.hrr, hrr)
	}
	if up := int(r.BytesUp); up != b.up && up != b.up-b.unread || r.BytesDown != int64(b.down) {
		t.Errorf("conn %d %s: bytes_up %d, bytes_down %d; the capture shows %d (%d maybe unread) and %d after CONNECT",
			i, r.ID, r.BytesUp, r.BytesDown, b.up, b.unread, b.down)
	}
}

// clientSide is what the record says of the client's own handshake: with
// tlsresume (client_leg), or, passed through, with the real server (its
// ServerHello).
func clientSide(r *inspect.ConnRecord) (resumed bool, version string) {
	if r.Passthrough != "" {
		return r.ServerHello.Resumed, inspect.VersionName(uint16(r.ServerHello.Version))
	}
	return r.ClientLeg.Resumed, r.ClientLeg.Version
}

// originResumed is what the record says the origin did: resumed
// tlsresume's upstream handshake, or, passed through, the client's.
func originResumed(r *inspect.ConnRecord) bool {
	if r.Passthrough != "" {
		return r.ServerHello != nil && r.ServerHello.Resumed
	}
	return r.UpstreamLeg.Resumed
}

// bundle writes the certificates of files into one PEM file in dir.
func bundle(t *testing.T, dir string, files ...string) string {
	t.Helper()
	var b []byte
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem...)
	}
	path := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkSequence checks a client's connections against their expected
// verdicts, the client's own reports and the origin's count.
func checkSequence(t *testing.T, recs []*inspect.ConnRecord, reports []clientReport, want []wantConn, o realOrigin) {
	t.Helper()
	if len(recs) != len(want) || len(reports) != len(want) {
		t.Fatalf("%d records and %d client reports, want %d connections", len(recs), len(reports), len(want))
	}
	upResumed := 0
	for i, r := range recs {
		rep, w := reports[i], want[i]
		got := wantConn{r.Verdict.Code, r.Verdict.Client, r.Verdict.Upstream}
		if raced := (wantConn{inspect.CodeUpstreamTicketPending, w.client, inspect.CodeUpstreamTicketPending}); w == wantResumed && got == raced && i > 0 {
			// A client that reconnects at once (gnutls-cli --resume, a few ms
			// on a loaded machine) can start before the origin's TLS 1.3
			// ticket for the previous connection reached tlsresume: nothing
			// was cached yet, and the verdict says so. The origin's count
			// below still has to agree.
			t.Logf("conn %d %s: the previous connection's upstream ticket had not arrived yet: %s", i, r.ID, r.Verdict.Text)
		} else if got != w {
			t.Errorf("conn %d %s: verdict %+v (%s), want %+v", i, r.ID, got, r.Verdict.Text, w)
		}
		if resumed, _ := clientSide(r); rep.resumed != nil && *rep.resumed != resumed {
			t.Errorf("conn %d %s: the client says resumed=%v, the record %v", i, r.ID, *rep.resumed, resumed)
		}
		if _, p, _ := net.SplitHostPort(r.ClientAddr); rep.port != 0 && strconv.Itoa(rep.port) != p {
			t.Errorf("conn %d %s: the client used port %d, the record says %s", i, r.ID, rep.port, r.ClientAddr)
		}
		if originResumed(r) {
			upResumed++
		}
		if r.UpstreamLeg != nil && r.UpstreamLeg.ExtraHandshakes != 0 {
			t.Errorf("conn %d %s: %d extra upstream handshakes", i, r.ID, r.UpstreamLeg.ExtraHandshakes)
		}
	}
	var pages []string
	for _, rep := range reports {
		if rep.page != "" {
			pages = append(pages, rep.page)
		}
	}
	n, per := o.resumed(t, pages)
	if n != upResumed {
		t.Errorf("the origin counted %d resumptions, the records say %d", n, upResumed)
	}
	if len(per) == len(recs) {
		for i, r := range recs {
			if per[i] != originResumed(r) {
				t.Errorf("conn %d %s: the origin says resumed=%v, the record %v", i, r.ID, per[i], originResumed(r))
			}
		}
	}
}

// checkBrowser checks one browser page load: three connections one after
// another (two redirects), and any the browser opened ahead (Chromium
// preconnects a second socket). A connection that offered nothing is a
// first contact on the client leg, and on the upstream leg too unless
// another one to the origin was open then (upstream_ticket_pending) or
// had stored a ticket; every connection that offered a PSK, which it got
// from an earlier response, resumed both legs, and at least one did.
func checkBrowser(t *testing.T, recs []*inspect.ConnRecord, o realOrigin) {
	t.Helper()
	if len(recs) < 3 {
		t.Fatalf("%d connections to the origin, want at least 3 (page and two redirects)", len(recs))
	}
	both, upResumed, extra := 0, 0, 0
	for i, r := range recs {
		switch r.ClientHello.Attempt {
		case inspect.AttemptPSK:
			if r.Verdict.Code != inspect.CodeBothResumed {
				t.Errorf("conn %d %s: offered a PSK, verdict %s (%s), want %s", i, r.ID, r.Verdict.Code, r.Verdict.Text, inspect.CodeBothResumed)
			}
		case inspect.AttemptNone:
			c, u := r.Verdict.Client, r.Verdict.Upstream
			if c != inspect.CodeClientFirstContact && c != inspect.CodeClientOfferedNothing ||
				u != inspect.CodeUpstreamFirstContact && u != inspect.CodeUpstreamTicketPending && u != inspect.CodeUpstreamResumed {
				t.Errorf("conn %d %s: offered nothing, verdict %+v (%s)", i, r.ID, r.Verdict, r.Verdict.Text)
			}
			if i == 0 && c != inspect.CodeClientFirstContact {
				t.Errorf("first connection %s: client verdict %s, want %s", r.ID, c, inspect.CodeClientFirstContact)
			}
		default:
			t.Errorf("conn %d %s: Chromium attempted %s", i, r.ID, r.ClientHello.Attempt)
		}
		if r.ClientLeg.Resumed && r.UpstreamLeg.Resumed {
			both++
		}
		if r.UpstreamLeg.Resumed {
			upResumed++
		}
		extra += r.UpstreamLeg.ExtraHandshakes
	}
	if both == 0 {
		t.Errorf("none of %d connections resumed both legs", len(recs))
	}
	n, _ := o.resumed(t, nil)
	if n < upResumed || n > upResumed+extra {
		t.Errorf("the origin counted %d resumptions; the records say %d (plus at most %d extra handshakes)", n, upResumed, extra)
	}
}

// checkDirect runs the client straight at the origin, where it must
// resume its second connection, by its own word and by the origin's.
func checkDirect(t *testing.T, tc realCase, bin string, o realOrigin, files originFiles) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, before := o.resumed(t, nil) // nginx's log already holds the proxied requests
	reps := tc.run(&clientRun{t: t, ctx: ctx, dir: t.TempDir(), ca: files.cert, origin: o.addr()}, bin)
	var pages []string
	for _, r := range reps {
		if r.page != "" {
			pages = append(pages, r.page)
		}
	}
	// nginx logs a request after it answered it: a client can be done
	// before the line is written, so wait up to 2 s for one per connection.
	_, after := o.resumed(t, pages)
	for deadline := time.Now().Add(2 * time.Second); len(after)-len(before) < len(reps) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		_, after = o.resumed(t, pages)
	}
	seen := after[len(before):] // one per request: a connection without one is not logged
	if len(reps) != 2 || len(seen) == 0 || !seen[len(seen)-1] || len(seen) == 2 && seen[0] {
		t.Errorf("straight at the origin: %d connections, the origin says resumed=%v per request; want the second resumed", len(reps), seen)
	}
	for i, r := range reps {
		if want := i == 1; r.resumed != nil && *r.resumed != want {
			t.Errorf("straight at the origin, connection %d: the client says resumed=%v, want %v", i, *r.resumed, want)
		}
	}
	t.Logf("control: straight at the origin, %s resumed its second connection (the origin says %v)", tc.client, seen)
}

// collector gathers the records of connections to one origin port,
// skipping others (a browser's own background connections).
type collector struct {
	e      *testEnv
	suffix string // ":port" of the origin
	got    []*inspect.ConnRecord
	other  []*inspect.ConnRecord
}

func (c *collector) take(r *inspect.ConnRecord) {
	if strings.HasSuffix(r.Target, c.suffix) {
		c.got = append(c.got, r)
	} else {
		c.other = append(c.other, r)
	}
}

// wait returns once n records for the origin arrived.
func (c *collector) wait(t *testing.T, n int) {
	t.Helper()
	for len(c.got) < n {
		select {
		case r := <-c.e.got:
			c.take(r)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d records for the origin within 10s, want %d", len(c.got), n)
		}
	}
}

// quiet takes records until none arrives for d.
func (c *collector) quiet(d time.Duration) {
	for {
		select {
		case r := <-c.e.got:
			c.take(r)
		case <-time.After(d):
			return
		}
	}
}

// sorted returns the origin's records in connection order.
func (c *collector) sorted() []*inspect.ConnRecord {
	recs := slices.Clone(c.got)
	slices.SortFunc(recs, func(a, b *inspect.ConnRecord) int {
		return atoi(strings.TrimPrefix(a.ID, "c")) - atoi(strings.TrimPrefix(b.ID, "c"))
	})
	return recs
}
