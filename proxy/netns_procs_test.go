//go:build linux

package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// This file runs the servers of the TestNetns* tests: origins inside the
// origin namespace (openssl s_server, and this test binary re-executed as
// a Go origin) and tlsresume itself in the root namespace.

// newNSOriginFiles is the origins' certificate, for origin.test and the
// origin namespace's addresses.
func newNSOriginFiles(tb testing.TB, dir string) originFiles {
	var ips []net.IP
	for _, a := range []string{nsOrigin4.String(), nsOrigin6.String(), nsOriginB4.String(), nsOriginB6.String()} {
		ips = append(ips, net.ParseIP(a))
	}
	return writeOriginFiles(tb, dir, "origin.test", ips)
}

// nsProc is a server running in a namespace until the test ends. Its stdin
// stays open (openssl s_server stops at end of input; the Go origin stops
// when it is closed).
type nsProc struct {
	out    *tlstest.Buffer
	stdin  io.WriteCloser
	exited chan struct{}
}

// start runs name in ns and returns once ready(output) holds.
func (n *netnsTopo) start(ctx context.Context, ns string, env []string, ready func(string) bool, name string, args ...string) *nsProc {
	n.tb.Helper()
	cmd := n.nsCommand(ctx, ns, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	p := &nsProc{out: &tlstest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		n.tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("starting %s in %s: %v", name, ns, err)
	}
	go func() { cmd.Wait(); close(p.exited) }()
	n.tb.Cleanup(func() {
		p.stdin.Close()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
	deadline := time.After(10 * time.Second)
	for !ready(p.out.String()) {
		select {
		case <-p.exited:
			n.tb.Fatalf("%s %s exited in %s: %s", filepath.Base(name), strings.Join(args, " "), ns, tlstest.Tail(p.out.String(), 600))
		case <-deadline:
			n.tb.Fatalf("%s %s not ready in 10s: %s", filepath.Base(name), strings.Join(args, " "), tlstest.Tail(p.out.String(), 600))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// startSServer runs `openssl s_server` in the origin namespace on accept
// (host:port). With -www its page ends with OpenSSL's session line, "New,
// TLSv1.3, ..." or "Reused, ...": the origin's own word on whether it
// resumed tlsresume's upstream handshake (or, passed through, the client).
func (n *netnsTopo) startSServer(ctx context.Context, openssl string, f originFiles, accept string, args ...string) *nsProc {
	n.tb.Helper()
	return n.start(ctx, n.origin, nil, func(out string) bool { return strings.Contains(out, "ACCEPT") },
		openssl, append([]string{"s_server", "-accept", accept, "-cert", f.cert, "-key", f.key}, args...)...)
}

// nsOriginEnv, when set, makes TestNetnsOriginHelper serve as the Go origin.
const nsOriginEnv = "TLSRESUME_NETNS_ORIGIN"

// nsOriginSpec is what the Go origin serves, passed in nsOriginEnv as JSON.
type nsOriginSpec struct {
	Cert, Key string
	TLS       []string // host:port served as HTTPS (h2 and http/1.1)
	HTTP      []string // host:port served as plain HTTP
}

// startGoOrigin re-executes this test binary in the origin namespace as a
// Go origin (TestNetnsOriginHelper) whose pages say whether it resumed.
func (n *netnsTopo) startGoOrigin(ctx context.Context, f originFiles, tlsAddrs, httpAddrs []string) *nsProc {
	n.tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		n.tb.Fatal(err)
	}
	spec, _ := json.Marshal(nsOriginSpec{Cert: f.cert, Key: f.key, TLS: tlsAddrs, HTTP: httpAddrs})
	p := n.start(ctx, n.origin, []string{nsOriginEnv + "=" + string(spec)},
		func(out string) bool { return strings.Contains(out, "READY") || strings.Contains(out, "ERROR") },
		exe, "-test.run=^TestNetnsOriginHelper$", "-test.count=1")
	if out := p.out.String(); strings.Contains(out, "ERROR") {
		n.tb.Fatalf("Go origin: %s", tlstest.Tail(out, 600))
	}
	return p
}

// TestNetnsOriginHelper is not a test: it is the Go origin of the TestNetns*
// tests when startGoOrigin re-executes the test binary inside the origin
// namespace, and does nothing otherwise.
func TestNetnsOriginHelper(t *testing.T) {
	raw := os.Getenv(nsOriginEnv)
	if raw == "" {
		return
	}
	if err := serveNSOrigin(raw); err != nil {
		fmt.Println("ERROR:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveNSOrigin serves the spec until its stdin closes.
func serveNSOrigin(raw string) error {
	var spec nsOriginSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(spec.Cert, spec.Key)
	if err != nil {
		return err
	}
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			fmt.Fprintf(w, "hello from go origin %s %s resumed=%v\n", r.Host, r.Proto, r.TLS.DidResume)
			return
		}
		fmt.Fprintf(w, "hello over http from go origin %s %s\n", r.Host, r.Proto)
	})
	for _, a := range slices.Concat(spec.TLS, spec.HTTP) {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: page, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		if slices.Contains(spec.TLS, a) {
			go srv.ServeTLS(ln, "", "")
		} else {
			go srv.Serve(ln)
		}
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// nsProxy is tlsresume in the root namespace, with its CA and its records.
type nsProxy struct {
	tb     testing.TB
	ca     *certs.CA
	caFile string // the CA's PEM, for clients
	srv    *Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	recs  []*inspect.ConnRecord
	taken int
}

// newNSProxy creates tlsresume allowing the client namespace's networks and
// trusting the origins' certificate; mod may change the config.
func newNSProxy(tb testing.TB, f originFiles, mod func(*Config)) *nsProxy {
	tb.Helper()
	dir := tb.TempDir()
	os.Chmod(dir, 0o700)
	ca, _, err := certs.Init(dir, time.Now())
	if err != nil {
		tb.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	p := &nsProxy{tb: tb, ca: ca, caFile: ca.CertFile()}
	cfg := Config{Issuer: iss, CA: ca, Allow: nsClientNets, UpstreamRoots: f.pool}
	if os.Getenv("TLSRESUME_NETNS_LOG") != "" {
		cfg.Log = zerolog.New(zerolog.NewTestWriter(tb))
	}
	if mod != nil {
		mod(&cfg)
	}
	if p.srv, err = New(cfg); err != nil {
		tb.Fatal(err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	followed := make(chan struct{})
	go p.follow(p.srv.Subscribe(context.Background(), 4096), followed)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.srv.Shutdown(ctx)
		p.cancel()
		p.wg.Wait()
		<-followed
	})
	return p
}

// listen serves one of tlsresume's listeners ("connect", "transparent",
// "sni", "http") on addr and returns its port.
func (p *nsProxy) listen(kind, addr string) int {
	p.tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.tb.Fatalf("%s listener on %s: %v", kind, addr, err)
	}
	return p.serve(kind, ln)
}

// serve serves ln as one of tlsresume's listeners and returns its port.
func (p *nsProxy) serve(kind string, ln net.Listener) int {
	p.tb.Helper()
	serve := map[string]func(context.Context, net.Listener) error{
		"connect": p.srv.Serve, "transparent": p.srv.ServeTransparent, "sni": p.srv.ServeSNI, "http": p.srv.ServeHostHTTP,
	}[kind]
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := serve(p.ctx, ln); err != nil {
			p.tb.Errorf("%s listener: %v", kind, err)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// follow keeps every closing record of the stream.
func (p *nsProxy) follow(events <-chan inspect.Event, done chan<- struct{}) {
	defer close(done)
	for ev := range events {
		if ev.Kind == inspect.EventClose {
			p.mu.Lock()
			p.recs = append(p.recs, ev.Record)
			p.mu.Unlock()
		}
	}
}

// take waits for the next n records and returns them in connection order.
func (p *nsProxy) take(n int) []*inspect.ConnRecord {
	p.tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.mu.Lock()
		if len(p.recs)-p.taken >= n {
			got := slices.Clone(p.recs[p.taken : p.taken+n])
			p.taken += n
			p.mu.Unlock()
			slices.SortFunc(got, func(a, b *inspect.ConnRecord) int { return nsConnNum(a.ID) - nsConnNum(b.ID) })
			return got
		}
		have := len(p.recs) - p.taken
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.tb.Fatalf("%d of %d records within 15s", have, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pendingBrief lists the records that arrived and were not taken, for a
// failure message: when a client fails, tlsresume's record says why.
func (p *nsProxy) pendingBrief() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, r := range p.recs[p.taken:] {
		b.WriteString("\n\t" + nsBrief(r))
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func nsConnNum(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "c"))
	return n
}

// nsJSON is a record as it is logged, for failure messages and the report.
func nsJSON(r *inspect.ConnRecord) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// nsBrief is the facts of a record the tests check, for their logs.
func nsBrief(r *inspect.ConnRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "id=%s source=%s client_addr=%s server_addr=%s target=%s sni=%q", r.ID, r.Source, r.ClientAddr, r.ServerAddr, r.Target, r.SNI)
	if ch := r.ClientHello; ch != nil {
		fmt.Fprintf(&b, " attempt=%s early_data=%v", ch.Attempt, ch.EarlyData)
	}
	if l := r.ClientLeg; l != nil {
		fmt.Fprintf(&b, " client_leg={version=%s alpn=%q resumed=%v ticket=%s ticket_from=%q error=%q}", l.Version, l.ALPN, l.Resumed, l.Ticket, l.TicketFrom, l.Error)
	}
	if u := r.UpstreamLeg; u != nil {
		fmt.Fprintf(&b, " upstream_leg={addr=%s sni=%q version=%s alpn=%q resumed=%v cache=%s offered=%s verified=%v error=%q}",
			u.Addr, u.SNI, u.Version, u.ALPN, u.Resumed, u.Cache, u.Offered, u.Verified, u.Error)
	}
	if m := r.Mirrored; m != nil {
		fmt.Fprintf(&b, " mirrored.names=%v", m.Names)
	}
	if sh := r.ServerHello; sh != nil {
		by := "null"
		if sh.ResumedBy != nil {
			by = string(*sh.ResumedBy)
		}
		fmt.Fprintf(&b, " server_hello={version=%#x complete=%v resumed=%v resumed_by=%s}", sh.Version, sh.Complete, sh.Resumed, by)
	}
	if r.Passthrough != "" {
		fmt.Fprintf(&b, " passthrough=%q", r.Passthrough)
	}
	if r.Error != "" {
		fmt.Fprintf(&b, " error=%q", r.Error)
	}
	fmt.Fprintf(&b, " bytes_up=%d bytes_down=%d verdict=%s (%s)", r.BytesUp, r.BytesDown, r.Verdict.Code, r.Verdict.Text)
	return b.String()
}
