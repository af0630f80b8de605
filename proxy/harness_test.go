package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// testEnv is a proxy under test on loopback, with its CA and records.
type testEnv struct {
	t       *testing.T
	dir     string // CA directory
	ca      *certs.CA
	srv     *Server
	addr    string
	mu      sync.Mutex
	records []*inspect.ConnRecord
	got     chan *inspect.ConnRecord
	cancel  context.CancelFunc
	done    chan error
	// followed closes when the test's subscription ends; checked then says
	// what checkStream found wrong with the second subscription, if anything.
	followed chan struct{}
	checked  chan string
	// logPath is the --log file a third subscriber writes; logged says
	// how closing it went.
	logPath string
	logged  chan error
}

// startProxy runs a Server on 127.0.0.1 with a CA in dir. mod may change
// the config before the server starts.
func startProxy(t *testing.T, dir string, mod func(*Config)) *testEnv {
	t.Helper()
	ca, _, err := certs.Init(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := LoadTicketKeys(filepath.Join(dir, "ticket-keys.json"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, ca: ca, got: make(chan *inspect.ConnRecord, 4096)}
	cfg := Config{Issuer: iss, CA: ca, TicketKeys: keys}
	if mod != nil {
		mod(&cfg)
	}
	if cfg.UpstreamRoots == nil && !cfg.InsecureUpstream {
		cfg.UpstreamRoots = originPool
	}
	e.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Two subscribers, as the CLI has (the --log file and the live view):
	// one hands records to the test, the other checks the stream itself.
	e.followed = make(chan struct{})
	e.checked = make(chan string, 1)
	go e.follow(e.srv.Subscribe(context.Background(), 4096))
	go checkStream(e.srv.Subscribe(context.Background(), 4096), e.checked)
	// And a third, the --log file, read back by the report's reader when
	// the proxy stops: every record must survive the round trip unchanged.
	e.logPath = filepath.Join(t.TempDir(), "conns.jsonl")
	rl, err := OpenRecordLog(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	e.logged = make(chan error, 1)
	logEvents := e.srv.Subscribe(context.Background(), 4096) // before any connection, not in the goroutine
	go func() {
		rl.Follow(logEvents, zerolog.Nop())
		e.logged <- rl.Close()
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- e.srv.Serve(ctx, ln) }()
	t.Cleanup(e.stop)
	return e
}

// stop shuts the proxy down and waits for it.
func (e *testEnv) stop() {
	if e.cancel == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.srv.Shutdown(ctx)
	e.cancel()
	<-e.done
	e.cancel = nil
	<-e.followed
	if problem := <-e.checked; problem != "" {
		e.t.Errorf("record stream: %s", problem)
	}
	if err := <-e.logged; err != nil {
		e.t.Errorf("record log: %v", err)
	}
	e.checkLog()
}

// checkLog reads the --log file back with inspect.ReadLog and compares
// every record with the one the stream carried.
func (e *testEnv) checkLog() {
	f, err := os.Open(e.logPath)
	if err != nil {
		e.t.Error(err)
		return
	}
	defer f.Close()
	read, bad, _, err := inspect.ReadLog(f)
	if err != nil || bad > 0 || len(read) != len(e.records) {
		e.t.Errorf("record log: %d records read back (%d bad lines, %v), %d published", len(read), bad, err, len(e.records))
		return
	}
	byID := map[string]*inspect.ConnRecord{}
	for _, r := range e.records {
		byID[r.ID] = r
	}
	for _, got := range read {
		want := byID[got.ID]
		if want == nil {
			e.t.Errorf("record log: %s was never published", got.ID)
			continue
		}
		if !got.Time.Equal(want.Time) {
			e.t.Errorf("record log: %s time %v, published %v", got.ID, got.Time, want.Time)
		}
		w := *want
		w.Time = got.Time // the monotonic clock reading does not travel
		if !reflect.DeepEqual(got, &w) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(&w)
			e.t.Errorf("record log: %s read back differs:\n got %s\nwant %s", got.ID, gj, wj)
		}
	}
}

// follow hands each closing record to the test.
func (e *testEnv) follow(events <-chan inspect.Event) {
	defer close(e.followed)
	for ev := range events {
		if ev.Dropped > 0 {
			e.t.Errorf("the test's subscriber lost %d events", ev.Dropped)
		}
		if ev.Kind != inspect.EventClose {
			continue
		}
		e.mu.Lock()
		e.records = append(e.records, ev.Record)
		e.mu.Unlock()
		select {
		case e.got <- ev.Record:
		default:
			e.t.Errorf("record %s: the test reads no more records", ev.Record.ID)
		}
	}
}

// checkStream reads a subscription to its end and reports the first thing
// wrong with it: a close without its open, two opens or closes of one
// connection, an open carrying a verdict, a lost event, or an open left
// without its close when the stream ended.
func checkStream(events <-chan inspect.Event, result chan<- string) {
	problem := ""
	note := func(format string, args ...any) {
		if problem == "" {
			problem = fmt.Sprintf(format, args...)
		}
	}
	state := map[string]inspect.EventKind{}
	for ev := range events {
		id := ev.Record.ID
		if ev.Dropped > 0 {
			note("lost %d events", ev.Dropped)
		}
		switch {
		case ev.Kind == inspect.EventOpen && state[id] != "":
			note("%s opened twice", id)
		case ev.Kind == inspect.EventOpen && ev.Record.Verdict.Code != "":
			note("%s opened with a verdict", id)
		case ev.Kind == inspect.EventClose && state[id] != inspect.EventOpen:
			note("%s closed without being open (%q)", id, state[id])
		case ev.Kind == inspect.EventClose && ev.Record.Verdict.Code == "":
			note("%s closed without a verdict", id)
		}
		state[id] = ev.Kind
	}
	for id, k := range state {
		if k == inspect.EventOpen {
			note("%s still open when the stream ended", id)
		}
	}
	result <- problem
}

// next waits for the next record.
func (e *testEnv) next() *inspect.ConnRecord {
	e.t.Helper()
	select {
	case r := <-e.got:
		return r
	case <-time.After(10 * time.Second):
		e.t.Fatal("no record within 10s")
		return nil
	}
}

// caPool trusts the proxy's CA.
func (e *testEnv) caPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ca.Cert)
	return p
}

// connect opens a CONNECT tunnel through the proxy to target.
func (e *testEnv) connect(target string) net.Conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		e.t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	if br.Buffered() > 0 {
		e.t.Fatal("proxy sent bytes after its CONNECT reply")
	}
	c.SetDeadline(time.Time{})
	return c
}

// goGet fetches https://name/ through the proxy on a fresh connection with
// a Go client using cache, and reports whether the client resumed.
func (e *testEnv) goGet(name, target string, cache tls.ClientSessionCache, maxVersion uint16) (resumed bool, body string) {
	e.t.Helper()
	raw := e.connect(target)
	tc := tls.Client(raw, &tls.Config{ServerName: name, RootCAs: e.caPool(), ClientSessionCache: cache,
		MaxVersion: maxVersion, NextProtos: []string{"http/1.1"}})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		e.t.Fatalf("handshake through the proxy: %v", err)
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name)
	b, err := io.ReadAll(tc)
	if err != nil {
		e.t.Fatalf("reading the response: %v", err)
	}
	return tc.ConnectionState().DidResume, string(b)
}

// origin is a Go TLS server on loopback that counts resumptions.
type origin struct {
	addr     string
	resumed  atomic.Int32
	accepted atomic.Int32
	srv      *http.Server
}

// originCA is the test origins' self-signed certificate, which also issues
// leaves for other names (leafSignedByOrigin); originPool trusts it.
var (
	originCA   = mustCert(tlstest.CertOptions{Names: []string{"origin.test", "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, CA: true})
	originCert = originCA.TLS
	originPool = originCA.Pool()
)

func mustCert(o tlstest.CertOptions) tlstest.Cert {
	c, err := tlstest.MakeCert(o)
	if err != nil {
		panic(err)
	}
	return c
}

// startOrigin serves HTTPS on 127.0.0.1 with cfg's versions and ticket
// settings; each response says "hello from origin".
func startOrigin(t *testing.T, mod func(*tls.Config)) *origin {
	t.Helper()
	o := &origin{}
	cfg := &tls.Config{Certificates: []tls.Certificate{originCert}, NextProtos: []string{"h2", "http/1.1"}}
	if mod != nil {
		mod(cfg)
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		o.accepted.Add(1)
		if cs.DidResume {
			o.resumed.Add(1)
		}
		return nil
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from origin "+r.Proto)
	})}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// proxyTransport is an http.Transport that goes through the proxy.
func (e *testEnv) proxyTransport(cache tls.ClientSessionCache) *http.Transport {
	u, _ := url.Parse("http://" + e.addr)
	return &http.Transport{
		Proxy:             http.ProxyURL(u),
		TLSClientConfig:   &tls.Config{RootCAs: e.caPool(), ClientSessionCache: cache},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
}

func newCache(t *testing.T, file string) *upstream.Cache {
	t.Helper()
	c, err := upstream.NewCache(upstream.CacheConfig{File: file})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tempDir(t *testing.T) string {
	d := t.TempDir()
	os.Chmod(d, 0o700)
	return d
}
