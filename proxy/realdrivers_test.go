package proxy

import (
	"bufio"
	"context"
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
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// This file drives the real clients of realclients_test.go. Each driver
// makes two connections, the second offering what the first left behind,
// and returns what the client said about each.

// clientReport is what a client said about one of its connections.
type clientReport struct {
	port    int    // the client's local port; 0 when the client does not say
	resumed *bool  // nil when the client does not say
	page    string // the response body it received
}

// clientRun is one run of a client: through the proxy, or straight at the
// origin for a control.
type clientRun struct {
	t      *testing.T
	ctx    context.Context
	dir    string // scratch space
	proxy  string // proxy address; "" connects straight to the origin
	ca     string // PEM the client trusts: tlsresume's CA, or the origin's certificate
	origin string // 127.0.0.1:port
	// between, when not nil, is called after every connection but the
	// last, and returns once tlsresume recorded it: the next connection's
	// verdict depends on what the earlier one taught the proxy.
	between func()
}

func (cr *clientRun) port() string { _, p, _ := net.SplitHostPort(cr.origin); return p }

func (cr *clientRun) pause() {
	if cr.between != nil {
		cr.between()
	}
}

func boolp(b bool) *bool { return &b }

const httpGet = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"

// opensslClient runs `openssl s_client` twice, saving the session with
// -sess_out and offering it with -sess_in; it prints "New, ..." or
// "Reused, ..." for its own handshake before the response.
func opensslClient(versionFlag string, extra ...string) func(*clientRun, string) []clientReport {
	return func(cr *clientRun, bin string) []clientReport {
		sess := filepath.Join(cr.dir, "s_client.sess")
		var out []clientReport
		for i, sessFlag := range []string{"-sess_out", "-sess_in"} {
			if _, err := os.Stat(sess); i == 1 && err != nil {
				// OpenSSL saves only a resumable session: through tlsresume a
				// TLS 1.2 client without tickets gets none, because Go's server
				// answers a full handshake with an empty session ID
				// (crypto/tls/handshake_server.go). It then offers nothing.
				cr.t.Logf("s_client kept no session from its first connection: the second offers none")
				sessFlag = "-sess_out"
			}
			args := []string{"s_client", "-connect", cr.origin, "-servername", "localhost",
				"-CAfile", cr.ca, "-verify_return_error", versionFlag, "-ign_eof", sessFlag, sess}
			if cr.proxy != "" {
				args = append(args, "-proxy", cr.proxy)
			}
			stdout, _, err := runTool(cr.ctx, nil, httpGet, bin, append(args, extra...)...)
			if err != nil {
				cr.t.Fatal(err)
			}
			head, page, ok := strings.Cut(stdout, "\nHTTP/1.")
			m := opensslSession.FindStringSubmatch(head)
			if !ok || m == nil {
				cr.t.Fatalf("s_client %s: no session line or no response: %s", sessFlag, tlstest.Tail(stdout, 600))
			}
			out = append(out, clientReport{resumed: boolp(m[1] == "Reused"), page: page})
			if i == 0 {
				cr.pause()
			}
		}
		return out
	}
}

// opensslOverlap keeps a first s_client connection open and idle while a
// second one offers the session the first saved, as a browser does with a
// socket it opened ahead; then the first closes. Over TLS 1.3 the session
// is saved as soon as tlsresume's ticket arrives, right after the
// handshake, and the origin's tickets for tlsresume's upstream connection
// are on the wire by then too.
func opensslOverlap(versionFlag string) func(*clientRun, string) []clientReport {
	return func(cr *clientRun, bin string) []clientReport {
		sess := filepath.Join(cr.dir, "s_client.sess")
		args := []string{"s_client", "-connect", cr.origin, "-servername", "localhost",
			"-CAfile", cr.ca, "-verify_return_error", versionFlag}
		if cr.proxy != "" {
			args = append(args, "-proxy", cr.proxy)
		}
		first := tlstest.Command(cr.ctx, bin, append(slices.Clone(args), "-sess_out", sess)...)
		stdin, err := first.StdinPipe()
		if err != nil {
			cr.t.Fatal(err)
		}
		out1 := &tlstest.Buffer{}
		first.Stdout, first.Stderr = out1, out1
		if err := first.Start(); err != nil {
			cr.t.Fatal(err)
		}
		defer tlstest.KillGroup(first)
		saved := func() bool {
			b, _ := os.ReadFile(sess)
			return strings.Contains(string(b), "-----END SSL SESSION PARAMETERS-----")
		}
		if err := waitFor(cr.ctx, saved); err != nil {
			cr.t.Fatalf("the first s_client saved no session: %v: %s", err, tlstest.Tail(out1.String(), 600))
		}
		stdout, _, err := runTool(cr.ctx, nil, httpGet, bin, append(args, "-ign_eof", "-sess_in", sess)...)
		if err != nil {
			cr.t.Fatal(err)
		}
		stdin.Close() // s_client ends its connection at the end of its input
		if err := first.Wait(); err != nil {
			cr.t.Fatalf("the first s_client: %v: %s", err, tlstest.Tail(out1.String(), 600))
		}
		var reps []clientReport
		for i, o := range []string{out1.String(), stdout} {
			head, page, _ := strings.Cut(o, "\nHTTP/1.")
			m := opensslSession.FindStringSubmatch(head)
			if m == nil {
				cr.t.Fatalf("s_client %d printed no session line: %s", i, tlstest.Tail(o, 600))
			}
			reps = append(reps, clientReport{resumed: boolp(m[1] == "Reused"), page: page})
		}
		return reps
	}
}

// curlClient fetches two URLs in one run of curl. "Connection: close"
// makes the second a new connection, which offers the session curl cached
// from the first. curl does not say whether it resumed; it does say its
// local port, and the capture says the rest.
func curlClient(cr *clientRun, bin string) []clientReport {
	url := "https://localhost:" + cr.port() + "/"
	pages := []string{filepath.Join(cr.dir, "page1"), filepath.Join(cr.dir, "page2")}
	args := []string{"-sS", "--max-time", "20", "--cacert", cr.ca, "-H", "Connection: close",
		"-w", "%{local_port}\n", "-o", pages[0], "-o", pages[1], url, url}
	if cr.proxy != "" {
		args = append(args, "-x", "http://"+cr.proxy)
	}
	stdout, _, err := runTool(cr.ctx, nil, "", bin, args...)
	if err != nil {
		cr.t.Fatal(err)
	}
	ports := strings.Fields(stdout)
	if len(ports) != 2 {
		cr.t.Fatalf("curl printed %q, want two local ports", stdout)
	}
	var out []clientReport
	for i, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			cr.t.Fatal(err)
		}
		port, _ := strconv.Atoi(ports[i])
		out = append(out, clientReport{port: port, page: string(b)})
	}
	return out
}

// pythonScript connects twice with one SSLContext, through the proxy's
// CONNECT unless the proxy is "", offering the first session to the second
// connection with session=. It prints one JSON line per connection and
// waits for a line on stdin before the second.
const pythonScript = `
import json, socket, ssl, sys
proxy, target, ver, ca = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
v = ssl.TLSVersion.TLSv1_3 if ver == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
sess = None
for i in range(2):
    host, port = (proxy or target).rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    if proxy:
        raw.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            b = raw.recv(1)
            if not b:
                sys.exit("proxy closed the connection during CONNECT: %r" % head)
            head += b
        if head.split(b" ")[1] != b"200":
            sys.exit("CONNECT refused: %r" % head)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
    s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    page = b""
    while True:
        try:
            d = s.recv(65536)
        except ssl.SSLEOFError:
            break
        if not d:
            break
        page += d
    print(json.dumps({"port": s.getsockname()[1], "reused": s.session_reused,
                      "version": s.version(), "page": page.decode("latin-1")}), flush=True)
    sess = s.session
    s.close()
    if i == 0:
        sys.stdin.readline()
`

func pythonClient(version string) func(*clientRun, string) []clientReport {
	return func(cr *clientRun, bin string) []clientReport {
		cmd := tlstest.Command(cr.ctx, bin, "-c", pythonScript, cr.proxy, cr.origin, version, cr.ca)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		stderr := &tlstest.Buffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			cr.t.Fatal(err)
		}
		defer tlstest.KillGroup(cmd)
		var out []clientReport
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for i := 0; i < 2 && sc.Scan(); i++ {
			var line struct {
				Port          int
				Reused        bool
				Version, Page string
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				cr.t.Fatalf("python printed %q: %v", sc.Text(), err)
			}
			if want := "TLSv" + version; line.Version != want {
				cr.t.Errorf("python negotiated %s, want %s", line.Version, want)
			}
			out = append(out, clientReport{port: line.Port, resumed: boolp(line.Reused), page: line.Page})
			if i == 0 {
				cr.pause()
				io.WriteString(stdin, "\n")
			}
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil || len(out) != 2 {
			cr.t.Fatalf("python: %v, %d connections reported: %s", err, len(out), tlstest.Tail(stderr.String(), 600))
		}
		return out
	}
}

// gnutlsClient runs `gnutls-cli --resume`, which connects, reconnects
// offering the session, then sends its stdin on the second connection. It
// has no proxy option, so it connects to a local forwarder that opens the
// CONNECT tunnel. priority is added to the priority string: with
// ":%NO_TICKETS_TLS12" a TLS 1.2 hello has no session_ticket extension
// (--noticket and %NO_TICKETS leave it in GnuTLS 3.7).
func gnutlsClient(version string, priority ...string) func(*clientRun, string) []clientReport {
	return func(cr *clientRun, bin string) []clientReport {
		addr := cr.origin
		if cr.proxy != "" {
			addr = forwardVia(cr.t, cr.proxy, "localhost:"+cr.port())
		}
		host, port, _ := net.SplitHostPort(addr)
		args := []string{"--x509cafile", cr.ca, "--resume",
			"--priority", "NORMAL:-VERS-ALL:+VERS-TLS" + version + strings.Join(priority, ""), "--sni-hostname", "localhost",
			"--verify-hostname", "localhost", "-p", port, host}
		stdout, stderr, err := runTool(cr.ctx, nil, httpGet, bin, args...)
		if err != nil {
			cr.t.Fatal(err)
		}
		first, second, ok := strings.Cut(stdout+stderr, "- Connecting again")
		if !ok {
			cr.t.Fatalf("gnutls-cli did not reconnect: %s", tlstest.Tail(stdout+stderr, 600))
		}
		const resumed = "This is a resumed session"
		_, page, _ := strings.Cut(second, "\nHTTP/1.")
		return []clientReport{
			{resumed: boolp(strings.Contains(first, resumed))},
			{resumed: boolp(strings.Contains(second, resumed)), page: page},
		}
	}
}

// forwardVia listens on 127.0.0.1 and relays each connection through a
// CONNECT tunnel to target, for clients that have no proxy setting.
func forwardVia(t *testing.T, proxyAddr, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				up, err := net.DialTimeout("tcp", proxyAddr, 5*time.Second)
				if err != nil {
					return
				}
				up.SetDeadline(time.Now().Add(30 * time.Second))
				fmt.Fprintf(up, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
				br := bufio.NewReader(up)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusOK || br.Buffered() > 0 {
					up.Close()
					return
				}
				pipe(c, up, 0, 10*time.Second, nil)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// chromiumClient loads the page origin's "/" once with headless Chromium,
// trusting tlsresume's CA through an NSS database in a scratch $HOME.
func chromiumClient(cr *clientRun, bin string) []clientReport {
	certutil := tlstest.Need(cr.t, "certutil")
	home := filepath.Join(cr.dir, "home")
	nssdb := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		cr.t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", nssdb, "-N", "--empty-password"},
		{"-d", nssdb, "-A", "-t", "C,,", "-n", "tlsresume", "-i", cr.ca},
	} {
		if _, _, err := runTool(cr.ctx, nil, "", certutil, args...); err != nil {
			cr.t.Fatal(err)
		}
	}
	stdout, stderr, err := tlstest.DumpDOM(cr.ctx, bin, tlstest.ChromiumPage{
		URL: "https://localhost:" + cr.port() + "/", Dir: cr.dir, Env: []string{"HOME=" + home}, Logf: cr.t.Logf,
		Flags: []string{"--proxy-server=http://" + cr.proxy,
			// Chromium bypasses the proxy for loopback on its own (since M72);
			// "<-loopback>" takes that implicit rule out (net/docs/proxy.md).
			"--proxy-bypass-list=<-loopback>"},
	})
	if err != nil {
		cr.t.Fatal(err)
	}
	if !strings.Contains(stdout, "page loaded") {
		cr.t.Fatalf("chromium did not load the page: %s %s", tlstest.Tail(stdout, 300), tlstest.Tail(stderr, 600))
	}
	return nil
}
