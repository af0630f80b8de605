//go:build linux

package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	tdns "github.com/tlsresume/tlsresume/proxy/dns"
)

// This file holds what the TestNetns* tests share: the origins every test
// starts, tlsresume in transparent mode, and running and reading clients.

// nsSession is OpenSSL's session line: s_client prints its own before the
// response, s_server -www puts the upstream side's in its page.
var nsSession = regexp.MustCompile(`(?m)^(New|Reused), (TLSv1\.[0-3])`)

// nsEnv is one test's network, origins and tools.
type nsEnv struct {
	t             *testing.T
	ctx           context.Context
	n             *netnsTopo
	files         originFiles
	openssl, curl string
}

// newNSEnv builds the network with openssl s_server -www on 10.233.2.2:443
// and [fd33:2::2]:443, and the Go origin on 10.233.2.3:443 and
// [fd33:2::3]:443 (plus plain HTTP on 10.233.2.2:80). Everything is bounded
// by a 50-second context.
func newNSEnv(t *testing.T) *nsEnv {
	t.Helper()
	openssl, curl := tlstest.Need(t, "openssl"), tlstest.Need(t, "curl")
	n := newNetnsTopo(t)
	e := &nsEnv{t: t, n: n, openssl: openssl, curl: curl}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	e.ctx = ctx
	e.files = newNSOriginFiles(t, t.TempDir())
	for _, a := range []netip.Addr{nsOrigin4, nsOrigin6} {
		n.startSServer(ctx, e.openssl, e.files, netip.AddrPortFrom(a, 443).String(), "-www")
	}
	n.startGoOrigin(ctx, e.files, []string{netip.AddrPortFrom(nsOriginB4, 443).String(), netip.AddrPortFrom(nsOriginB6, 443).String()},
		[]string{netip.AddrPortFrom(nsOrigin4, 80).String()})
	return e
}

// transparentProxy starts tlsresume with transparent listeners on the
// client-facing root addresses and REDIRECTs the client namespace's TCP
// port 443 to them (IPv4 and IPv6), for the life of t.
func (e *nsEnv) transparentProxy(t *testing.T, mod func(*Config)) (*nsProxy, int, int) {
	t.Helper()
	p := newNSProxy(t, e.files, mod)
	port4 := p.listen("transparent", netip.AddrPortFrom(nsGW4, 0).String())
	port6 := p.listen("transparent", netip.AddrPortFrom(nsGW6, 0).String())
	e.n.redirect(t, false, "tcp", 443, port4)
	e.n.redirect(t, true, "tcp", 443, port6)
	return p, port4, port6
}

// tproxyProxy is transparentProxy with TPROXY instead of REDIRECT: the
// listeners are made transparent (ListenTransparent), and the client
// namespace's TCP port 443 reaches them with its destination unchanged.
func (e *nsEnv) tproxyProxy(t *testing.T, mod func(*Config)) (*nsProxy, int, int) {
	t.Helper()
	p := newNSProxy(t, e.files, mod)
	var ports [2]int
	for i, a := range []netip.Addr{nsGW4, nsGW6} {
		ln, err := ListenTransparent(e.ctx, netip.AddrPortFrom(a, 0).String())
		if err != nil {
			t.Fatalf("transparent listener on %s: %v", a, err)
		}
		ports[i] = p.serve("transparent", ln)
		e.n.tproxy(t, a.Is6(), 443, ports[i])
	}
	return p, ports[0], ports[1]
}

// curlTwice has curl in the client namespace fetch https://origin.test/
// twice from origin, port 443, through p, and checks that both records are
// intercepted transparent connections and that the second resumed on both
// legs (with h2, one connection carries both requests).
func (e *nsEnv) curlTwice(t *testing.T, p *nsProxy, origin netip.Addr, h2 bool) {
	t.Helper()
	dst := netip.AddrPortFrom(origin, 443)
	dir := t.TempDir()
	pages := []string{filepath.Join(dir, "1"), filepath.Join(dir, "2")}
	// Two URLs, "Connection: close": over HTTP/1.1 two connections, the
	// second offering the session curl kept from the first. Over HTTP/2
	// (where Connection is not a header, RFC 9113 §8.2.2) curl sends both
	// requests on one connection.
	url := "https://origin.test/"
	version, conns := "--http1.1", 2
	if h2 {
		version, conns = "--http2", 1
	}
	if _, _, err := e.n.run(e.ctx, e.n.client, "", e.curl, "-sS", "--noproxy", "*", "--max-time", "10", version,
		"--cacert", p.caFile, "--resolve", "origin.test:443:"+nsURLHost(origin), "-H", "Connection: close",
		"-o", pages[0], "-o", pages[1], url, url); err != nil {
		t.Fatalf("%v; records: %s", err, p.pendingBrief())
	}
	recs := p.take(conns)
	for i, r := range recs {
		t.Logf("record %d: %s", i+1, nsBrief(r))
		checkIntercepted(t, r, dst, nsClientFor(origin), "origin.test")
		page, _ := os.ReadFile(pages[i])
		if said := originSaid(t, string(page)); said != r.UpstreamLeg.Resumed || said != (i == 1) {
			t.Errorf("connection %d: the origin says resumed=%v, the record's upstream_leg.resumed=%v; want both %v", i+1, said, r.UpstreamLeg.Resumed, i == 1)
		}
		if want := []inspect.VerdictCode{inspect.CodeFirstContact, inspect.CodeBothResumed}[i]; r.Verdict.Code != want || r.ClientLeg.Resumed != (i == 1) {
			t.Errorf("connection %d: verdict %s (client resumed %v), want %s: %s", i+1, r.Verdict.Code, r.ClientLeg.Resumed, want, r.Verdict.Text)
		}
	}
	if h2 {
		r := recs[0]
		page2, _ := os.ReadFile(pages[1])
		if r.ClientLeg.ALPN != "h2" || r.UpstreamLeg.ALPN != "h2" || !strings.Contains(string(page2), "HTTP/2.0") {
			t.Errorf("alpn client %q upstream %q, second page %q: want h2 throughout", r.ClientLeg.ALPN, r.UpstreamLeg.ALPN, page2)
		}
	}
}

// sClientTwice runs openssl s_client (with flag, e.g. -tls1_3) in the
// client namespace against origin, port 443, twice, saving and then
// offering its session, and checks that both records are intercepted
// transparent connections on client leg version and that the second
// offered attempt ("psk", "ticket") and resumed on both legs.
func (e *nsEnv) sClientTwice(t *testing.T, p *nsProxy, origin netip.Addr, flag, version string, attempt inspect.Attempt) {
	t.Helper()
	dst := netip.AddrPortFrom(origin, 443)
	sess := filepath.Join(t.TempDir(), "sess")
	for i, sessFlag := range []string{"-sess_out", "-sess_in"} {
		sc := e.sClient(t, "-connect", dst.String(), "-servername", "origin.test", "-CAfile", p.caFile,
			"-verify_return_error", "-verify_hostname", "origin.test", flag, sessFlag, sess)
		r := p.take(1)[0]
		t.Logf("record %d: %s", i+1, nsBrief(r))
		checkIntercepted(t, r, dst, nsClientFor(origin), "origin.test")
		if (sc.session == "Reused") != (i == 1) || r.ClientLeg.Resumed != (i == 1) || r.ClientLeg.Version != version {
			t.Errorf("connection %d: s_client says %s %s; record client_leg resumed=%v version %s; want resumed=%v %s",
				i+1, sc.session, sc.version, r.ClientLeg.Resumed, r.ClientLeg.Version, i == 1, version)
		}
		if said := originSaid(t, sc.page); said != r.UpstreamLeg.Resumed || said != (i == 1) {
			t.Errorf("connection %d: the origin says resumed=%v, upstream_leg.resumed=%v; want %v", i+1, said, r.UpstreamLeg.Resumed, i == 1)
		}
		// A first connection offers nothing: its client leg must not say
		// the client brought a ticket tlsresume could not read.
		if i == 0 && (r.ClientHello.Attempt != "none" || r.ClientLeg.Ticket != "none") {
			t.Errorf("connection 1: attempt %q, client_leg.ticket %q; want none, none (the hello carries session_ticket len %d, no pre_shared_key)",
				r.ClientHello.Attempt, r.ClientLeg.Ticket, r.ClientHello.SessionTicket.Len)
		}
		if i == 1 && (r.ClientHello.Attempt != attempt || r.Verdict.Code != inspect.CodeBothResumed) {
			t.Errorf("connection 2: attempt %q verdict %s, want %q %s: %s", r.ClientHello.Attempt, r.Verdict.Code, attempt, inspect.CodeBothResumed, r.Verdict.Text)
		}
	}
}

// nsClientFor is the client namespace's address that connects to origin.
func nsClientFor(origin netip.Addr) netip.Addr {
	if origin.Is6() {
		return nsClient6
	}
	return nsClient4
}

// sClient is one run of openssl s_client in the client namespace, sending
// an HTTP/1.0 GET and waiting (-ign_eof) for the server to close.
type sClient struct {
	out     string // stdout
	session string // the client's own "New" or "Reused"
	version string // "TLSv1.3", ...
	page    string // the response after its status line
}

func (e *nsEnv) sClient(t *testing.T, args ...string) sClient {
	t.Helper()
	out, _, err := e.n.run(e.ctx, e.n.client, "GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n", e.openssl,
		append([]string{"s_client", "-ign_eof"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, tlstest.Tail(out, 800))
	}
	head, page, _ := strings.Cut(out, "\nHTTP/1.")
	m := nsSession.FindStringSubmatch(head)
	if m == nil {
		t.Fatalf("s_client printed no session line: %s", tlstest.Tail(out, 800))
	}
	return sClient{out: out, session: m[1], version: m[2], page: page}
}

// originSaid is the origin's word on one connection: s_server's session
// line, or the Go origin's resumed= field.
func originSaid(t *testing.T, page string) (resumed bool) {
	t.Helper()
	if m := nsSession.FindStringSubmatch(page); m != nil {
		return m[1] == "Reused"
	}
	switch {
	case strings.Contains(page, "resumed=true"):
		return true
	case strings.Contains(page, "resumed=false"):
		return false
	}
	t.Fatalf("the origin's page does not say whether it resumed: %q", tlstest.Tail(page, 300))
	return false
}

// checkIntercepted checks what every intercepted transparent connection's
// record must say.
func checkIntercepted(t *testing.T, r *inspect.ConnRecord, dst netip.AddrPort, client netip.Addr, sni string) {
	t.Helper()
	ca, _ := netip.ParseAddrPort(r.ClientAddr)
	switch {
	case r.Source != "transparent":
		t.Errorf("%s: source %q, want transparent", r.ID, r.Source)
	case r.ServerAddr != dst.String() || r.Target != dst.String():
		t.Errorf("%s: server_addr %q target %q, want the original destination %s", r.ID, r.ServerAddr, r.Target, dst)
	case ca.Addr() != client:
		t.Errorf("%s: client_addr %q, want the client namespace's %s", r.ID, r.ClientAddr, client)
	case r.SNI != sni || r.ClientHello == nil:
		t.Errorf("%s: sni %q (client_hello %v), want %q", r.ID, r.SNI, r.ClientHello != nil, sni)
	case r.Error != "" || r.ClientLeg == nil || r.ClientLeg.Error != "" || r.UpstreamLeg == nil || r.UpstreamLeg.Error != "":
		t.Errorf("%s: failed: %s", r.ID, nsJSON(r))
	case r.UpstreamLeg.Addr != dst.String() || !r.UpstreamLeg.Verified:
		t.Errorf("%s: upstream addr %q verified %v, want %s verified", r.ID, r.UpstreamLeg.Addr, r.UpstreamLeg.Verified, dst)
	}
}

// nsURLHost is an address as curl's --resolve and URLs want it.
func nsURLHost(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

// nsCAPool trusts a tlsresume CA file.
func nsCAPool(t testing.TB, file string) *x509.CertPool {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", file)
	}
	return pool
}

// nsHandshake makes one TLS handshake from the client namespace, through
// CONNECT at proxy when proxy is valid, else straight to dst (redirected).
func nsHandshake(d *nsDialer, proxy, dst netip.AddrPort, cfg *tls.Config) (*tls.Conn, error) {
	addr := dst
	if proxy.IsValid() {
		addr = proxy
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if proxy.IsValid() {
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dst, dst)
		const ok = "HTTP/1.1 200 Connection established\r\n\r\n"
		buf := make([]byte, len(ok))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != ok {
			c.Close()
			return nil, fmt.Errorf("CONNECT %s: %q %v", dst, buf, err)
		}
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// checkIntercepted's counterpart for passed-through connections: tlsresume
// terminated nothing, and the record's server_hello (read off the wire)
// agrees with what the client and the origin said. Connection i (0, 1) is
// expected to have resumed by `by` when i is 1 and by is not "".
func checkPassedThrough(t *testing.T, r *inspect.ConnRecord, dst netip.AddrPort, i int, clientSaid, originSaid bool, by inspect.Attempt) {
	t.Helper()
	want := i == 1 && by != ""
	if r.Source != "connect" || r.Passthrough == "" || r.ServerAddr != dst.String() || r.Target != dst.String() ||
		r.ClientLeg != nil || r.UpstreamLeg != nil || r.Error != "" {
		t.Errorf("connection %d: not a clean passthrough to %s: %s", i+1, dst, nsJSON(r))
		return
	}
	sh := r.ServerHello
	if sh == nil || !sh.Complete {
		t.Errorf("connection %d: server_hello %+v: the real server's answer was not read", i+1, sh)
		return
	}
	var gotBy inspect.Attempt
	if sh.ResumedBy != nil {
		gotBy = *sh.ResumedBy
	}
	if clientSaid != want || originSaid != want || sh.Resumed != want || (want && gotBy != by) {
		t.Errorf("connection %d: client says resumed=%v, origin says %v, record server_hello.resumed=%v resumed_by=%q; want %v %q",
			i+1, clientSaid, originSaid, sh.Resumed, gotBy, want, by)
	}
	code := inspect.CodePassthroughNotResumed
	if want {
		code = inspect.CodePassthroughResumed
	}
	if r.Verdict.Code != code {
		t.Errorf("connection %d: verdict %s, want %s: %s", i+1, r.Verdict.Code, code, r.Verdict.Text)
	}
}

// startDNS runs tlsresume's DNS server on the client-facing root address,
// port 53, the only port resolv.conf can name; when 53 is taken there, on a
// free port with the client namespace's port 53 REDIRECTed to it.
func (e *nsEnv) startDNS(t *testing.T, upstream string) *tdns.Server {
	t.Helper()
	start := func(port string) (*tdns.Server, error) {
		s, err := tdns.New(tdns.Config{Listen: net.JoinHostPort(nsGW4.String(), port), AnswerV4: nsGW4, Upstream: upstream, Allow: nsClientNets})
		if err != nil {
			return nil, err
		}
		if err := s.Start(e.ctx); err != nil {
			return nil, err
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("closing the DNS server: %v", err)
			}
		})
		return s, nil
	}
	s, err := start("53")
	if err != nil {
		t.Logf("DNS server on port 53: %v; using another port behind a REDIRECT", err)
		if s, err = start("0"); err != nil {
			t.Fatal(err)
		}
		port := netip.MustParseAddrPort(s.Addr()).Port()
		e.n.redirect(t, false, "udp", 53, int(port))
		e.n.redirect(t, false, "tcp", 53, int(port))
	}
	return s
}

// notRedirected connects s_client straight to a transparent listener, over
// IPv4 and IPv6, and checks each record says the connection was not
// redirected and that nothing was dialled or sent; it returns the records.
func (e *nsEnv) notRedirected(t *testing.T, p *nsProxy, port4, port6 int) []*inspect.ConnRecord {
	t.Helper()
	var recs []*inspect.ConnRecord
	for _, a := range []netip.AddrPort{netip.AddrPortFrom(nsGW4, uint16(port4)), netip.AddrPortFrom(nsGW6, uint16(port6))} {
		out, _, err := e.n.run(e.ctx, e.n.client, "", e.openssl, "s_client", "-connect", a.String(),
			"-servername", "origin.test", "-CAfile", p.caFile, "-verify_return_error")
		if err == nil {
			t.Errorf("s_client straight to the transparent listener %s succeeded: %s", a, tlstest.Tail(out, 300))
		}
		r := p.take(1)[0]
		t.Logf("record: %s", nsBrief(r))
		if !strings.Contains(r.Error, "not redirected") && !strings.Contains(r.Error, "original destination") {
			t.Errorf("%s: error %q, want it to say the connection was not redirected", a, r.Error)
		}
		if r.Source != "transparent" || r.UpstreamLeg != nil || r.BytesDown != 0 {
			t.Errorf("%s: source %q upstream %+v bytes_down %d: nothing should have been dialled or sent", a, r.Source, r.UpstreamLeg, r.BytesDown)
		}
		recs = append(recs, r)
	}
	return recs
}
