package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// realOrigin is an origin server on 127.0.0.1 that can say, afterwards,
// how many of tlsresume's upstream handshakes it resumed.
type realOrigin interface {
	addr() string
	// resumed returns the resumptions the origin counted and, when it can
	// tell them apart, whether each request's connection resumed, in order.
	// pages are the bodies the client received, for origins that report
	// in their page.
	resumed(t *testing.T, pages []string) (n int, perRequest []bool)
}

// originFiles is a self-signed origin certificate, written as PEM for
// servers that read files, and the pool that trusts it.
type originFiles struct {
	cert, key string
	pool      *x509.CertPool
}

// newOriginFiles makes one for localhost and 127.0.0.1.
func newOriginFiles(t testing.TB, dir string) originFiles {
	return writeOriginFiles(t, dir, "localhost", []net.IP{net.IPv4(127, 0, 0, 1)})
}

// writeOriginFiles makes a certificate for name and ips, in dir.
func writeOriginFiles(t testing.TB, dir, name string, ips []net.IP) originFiles {
	t.Helper()
	c := tlstest.NewCert(t, tlstest.CertOptions{Names: []string{name}, IPs: ips, CA: true})
	c.Write(t, filepath.Join(dir, "origin.pem"), filepath.Join(dir, "origin-key.pem"))
	return originFiles{cert: c.CertFile, key: c.KeyFile, pool: c.Pool()}
}

// goOrigin is startOrigin's Go TLS server, which counts resumptions.
type goOrigin struct{ *origin }

func (o goOrigin) addr() string { return o.origin.addr }
func (o goOrigin) resumed(*testing.T, []string) (int, []bool) {
	return int(o.origin.resumed.Load()), nil
}

// opensslOrigin is `openssl s_server -www`, whose page ends with OpenSSL's
// session line ("New, TLSv1.3, ..." or "Reused, ...") for the connection
// that fetched it: the origin's own word on whether it resumed.
type opensslOrigin struct{ address string }

func startOpenSSLOrigin(t *testing.T, ctx context.Context, files originFiles, args ...string) realOrigin {
	t.Helper()
	openssl := tlstest.Need(t, "openssl")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlstest.FreePort(t)))
	_, out := startTool(t, ctx, openssl, append([]string{"s_server", "-www", "-accept", addr,
		"-cert", files.cert, "-key", files.key}, args...)...)
	if err := waitFor(ctx, func() bool { return strings.Contains(out.String(), "ACCEPT") }); err != nil {
		t.Fatalf("s_server did not start: %v: %s", err, tlstest.Tail(out.String(), 400))
	}
	return opensslOrigin{addr}
}

var opensslSession = regexp.MustCompile(`(?m)^(New|Reused), (TLSv1\.[0-3])`)

func (o opensslOrigin) addr() string { return o.address }
func (o opensslOrigin) resumed(t *testing.T, pages []string) (int, []bool) {
	t.Helper()
	var n int
	var per []bool
	for i, p := range pages {
		m := opensslSession.FindStringSubmatch(p)
		if m == nil {
			t.Fatalf("page %d from s_server has no New/Reused line: %q", i, tlstest.Tail(p, 300))
		}
		per = append(per, m[1] == "Reused")
		if m[1] == "Reused" {
			n++
		}
	}
	return n, per
}

// nginxOrigin is Debian's nginx, whose access log records
// $ssl_session_reused ("r" or ".") for every request.
type nginxOrigin struct {
	address, accessLog string
}

// startNginx runs nginx with tickets and the session cache as asked,
// speaking protocols.
func startNginx(t *testing.T, ctx context.Context, files originFiles, tickets bool, cache, protocols string) realOrigin {
	t.Helper()
	dir := t.TempDir()
	o := nginxOrigin{address: net.JoinHostPort("127.0.0.1", strconv.Itoa(tlstest.FreePort(t))), accessLog: filepath.Join(dir, "access.log")}
	onOff := map[bool]string{true: "on", false: "off"}[tickets]
	runNginx(t, ctx, dir, o.address, fmt.Sprintf(`
	log_format reuse '$ssl_session_reused $ssl_protocol';
	access_log %[1]s reuse;
	server {
		listen %[2]s ssl;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		ssl_session_tickets %[5]s;
		ssl_session_cache %[6]s;
		ssl_protocols %[7]s;
		location / { return 200 "nginx\n"; }
	}
`, o.accessLog, o.address, files.cert, files.key, onOff, cache, protocols))
	return o
}

// runNginx runs nginx in the foreground without a master process, from dir,
// with httpBlock as its http {} block, until the test ends; addr is where
// it listens.
func runNginx(t *testing.T, ctx context.Context, dir, addr, httpBlock string) {
	t.Helper()
	nginx := tlstest.Need(t, "nginx")
	conf := fmt.Sprintf("daemon off;\nmaster_process off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log info;\nevents {}\nhttp {%[2]s}\n", dir, httpBlock)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// -e: nginx opens its compiled-in error log before reading the config.
	_, out := startTool(t, ctx, nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confFile)
	if err := waitListening(ctx, addr); err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		t.Fatalf("nginx: %v: %s %s", err, out.String(), tlstest.Tail(string(errLog), 400))
	}
}

func (o nginxOrigin) addr() string { return o.address }
func (o nginxOrigin) resumed(t *testing.T, _ []string) (int, []bool) {
	t.Helper()
	b, err := os.ReadFile(o.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var per []bool
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		r := strings.HasPrefix(line, "r ")
		if !r && !strings.HasPrefix(line, ". ") {
			t.Fatalf("nginx access log line %q", line)
		}
		per = append(per, r)
		if r {
			n++
		}
	}
	return n, per
}

// pageOrigin is a Go HTTPS origin for browsers: "/" redirects twice
// before the page, and every response closes its connection, so one page
// load is three connections one after another — each can offer the ticket
// the previous one received. It speaks HTTP/1.1 only (over h2 a browser
// would keep one connection).
type pageOrigin struct {
	address           string
	accepted, resumes atomic.Int32
}

func startPageOrigin(t *testing.T, files originFiles) *pageOrigin {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(files.cert, files.key)
	if err != nil {
		t.Fatal(err)
	}
	o := &pageOrigin{}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			o.accepted.Add(1)
			if cs.DidResume {
				o.resumes.Add(1)
			}
			return nil
		}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.address = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		switch r.URL.Path {
		case "/":
			http.Redirect(w, r, "/two", http.StatusFound)
		case "/two":
			http.Redirect(w, r, "/page", http.StatusFound)
		case "/page":
			io.WriteString(w, `<!doctype html><title>tlsresume</title><p id="done">page loaded</p>`)
		default:
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *pageOrigin) addr() string                               { return o.address }
func (o *pageOrigin) resumed(*testing.T, []string) (int, []bool) { return int(o.resumes.Load()), nil }
