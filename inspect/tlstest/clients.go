package tlstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Target is the server a client is pointed at.
type Target struct {
	Port    int
	Version uint16 // tls.VersionTLS12 or tls.VersionTLS13: the client offers only this
	Dir     string // scratch space: session files, browser profile
	Cert    Cert   // the server's certificate, for clients that verify
	// Logf, when set, is told what a client retried (Chromium): t.Logf.
	Logf func(format string, args ...any)
}

func (tg Target) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(tg.Port)) }

func (tg Target) url(path string) string { return "https://" + tg.addr() + path }

// Report is what one connection's client said about resumption, or, for a
// client that says nothing, what the server said. Port is the client's
// port, 0 when unknown: reports are then in connection order.
type Report struct {
	Port    int
	Resumed bool
}

// request is sent by clients that speak HTTP by hand: reading the response
// also reads the TLS 1.3 NewSessionTickets, which come after the handshake.
const request = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"

// OpenSSL's verdict line, printed by s_client and in s_server's -www page.
var opensslVerdict = regexp.MustCompile(`(?m)^(New|Reused), (TLSv1\.[0-3])`)

func parseOpenSSLVerdict(out string, version uint16) (Report, error) {
	m := opensslVerdict.FindStringSubmatch(out)
	if m == nil {
		return Report{}, fmt.Errorf("no New/Reused line in: %s", Tail(out, 400))
	}
	if want := versionName(version); m[2] != want {
		return Report{}, fmt.Errorf("negotiated %s, want %s", m[2], want)
	}
	return Report{Resumed: m[1] == "Reused"}, nil
}

func versionName(v uint16) string {
	if v == tls.VersionTLS13 {
		return "TLSv1.3"
	}
	return "TLSv1.2"
}

// OpenSSLClient runs `openssl s_client` twice, saving the session with
// -sess_out and offering it with -sess_in, and returns what s_client printed.
func OpenSSLClient(ctx context.Context, openssl string, tg Target, extra ...string) ([]Report, error) {
	sess := filepath.Join(tg.Dir, "s_client.sess")
	flag := "-tls1_2"
	if tg.Version == tls.VersionTLS13 {
		flag = "-tls1_3"
	}
	var out []Report
	for _, sessFlag := range []string{"-sess_out", "-sess_in"} {
		args := append([]string{"s_client", "-connect", tg.addr(), "-servername", "localhost",
			flag, "-ign_eof", sessFlag, sess}, extra...)
		stdout, _, err := Run(ctx, request, openssl, args...)
		if err != nil {
			return nil, err
		}
		r, err := parseOpenSSLVerdict(stdout, tg.Version)
		if err != nil {
			return nil, fmt.Errorf("s_client %s: %w", sessFlag, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// OpenSSLEarlyData runs `openssl s_client` twice against an s_server
// started with -early_data -quiet (not -www: s_server refuses early data
// with it). The first run saves the session once a ticket has arrived; the
// second offers it and sends early data, which s_client must see accepted.
func OpenSSLEarlyData(ctx context.Context, openssl string, tg Target) ([]Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	sess := filepath.Join(tg.Dir, "s_client.sess")
	early := filepath.Join(tg.Dir, "early_data.txt")
	if err := os.WriteFile(early, []byte(request), 0o600); err != nil {
		return nil, err
	}
	base := []string{"s_client", "-connect", tg.addr(), "-servername", "localhost", "-tls1_3"}
	ticket := func(out string) bool { return strings.Contains(out, "Post-Handshake New Session Ticket arrived") }
	out1, err := RunUntil(ctx, "", ticket, openssl, append(base, "-sess_out", sess)...)
	if err != nil {
		return nil, err
	}
	verdict := func(out string) bool { return opensslVerdict.MatchString(out) }
	out2, err := RunUntil(ctx, "", verdict, openssl, append(base, "-sess_in", sess, "-early_data", early)...)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(out2, "Early data was accepted") {
		return nil, fmt.Errorf("s_client -early_data: early data not accepted: %s", Tail(out2, 400))
	}
	var out []Report
	for _, o := range []string{out1, out2} {
		r, err := parseOpenSSLVerdict(o, tg.Version)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// GnuTLSClient runs `gnutls-cli --resume`, which connects, reconnects
// offering the session, and prints "This is a resumed session" when it was.
// For TLS 1.3 it sends an HTTP GET to receive a ticket, and waits for it.
func GnuTLSClient(ctx context.Context, gnutls string, tg Target) ([]Report, error) {
	args := []string{"--x509cafile", tg.Cert.CertFile, "--resume", "-p", strconv.Itoa(tg.Port)}
	if tg.Version == tls.VersionTLS13 {
		// Without it, on a loaded machine gnutls-cli sometimes reconnected
		// before the ticket arrived and offered nothing.
		args = append(args, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3", "--waitresumption")
	} else {
		args = append(args, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2")
	}
	stdout, stderr, err := Run(ctx, "", gnutls, append(args, "127.0.0.1")...)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(stdout+stderr, "- Connecting again", 2)
	if len(parts) != 2 {
		return nil, fmt.Errorf("gnutls-cli did not reconnect: %s", Tail(stdout+stderr, 400))
	}
	const resumed = "This is a resumed session"
	return []Report{{Resumed: strings.Contains(parts[0], resumed)}, {Resumed: strings.Contains(parts[1], resumed)}}, nil
}

// Curl fetches two URLs in one run of curl; the server closes each
// connection, so the second is a new handshake offering the cached session.
// curl prints no verdict, so this needs an OpenSSLServer: its -www page
// carries the server's verdict back.
func Curl(ctx context.Context, curl string, tg Target) ([]Report, error) {
	versions := []string{"--tlsv1.2", "--tls-max", "1.2"}
	if tg.Version == tls.VersionTLS13 {
		versions = []string{"--tlsv1.3"}
	}
	pages := []string{filepath.Join(tg.Dir, "curl1.html"), filepath.Join(tg.Dir, "curl2.html")}
	args := append([]string{"-sS", "--cacert", tg.Cert.CertFile, "--http1.1", "--max-time", "20"}, versions...)
	args = append(args, "-o", pages[0], "-o", pages[1], tg.url("/"), tg.url("/"))
	if _, _, err := Run(ctx, "", curl, args...); err != nil {
		return nil, err
	}
	var out []Report
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		r, err := parseOpenSSLVerdict(string(b), tg.Version)
		if err != nil {
			return nil, fmt.Errorf("curl page %s: %w", filepath.Base(p), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// pythonClient connects twice with one SSLContext, offering the first
// connection's session to the second with session=, and prints the local
// port and SSLSocket.session_reused of each.
const pythonClient = `
import socket, ssl, sys
port, ver, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
v = ssl.TLSVersion.TLSv1_3 if ver == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
sess = None
for i in range(2):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            while s.recv(65536):
                pass
            print(s.getsockname()[1], s.session_reused, s.version())
            sess = s.session
`

// Python runs pythonClient.
func Python(ctx context.Context, python string, tg Target) ([]Report, error) {
	ver := "1.2"
	if tg.Version == tls.VersionTLS13 {
		ver = "1.3"
	}
	stdout, _, err := Run(ctx, "", python, "-c", pythonClient, strconv.Itoa(tg.Port), ver, tg.Cert.CertFile)
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != versionName(tg.Version) {
			return nil, fmt.Errorf("python printed %q", line)
		}
		port, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("python printed %q", line)
		}
		out = append(out, Report{Port: port, Resumed: f[1] == "True"})
	}
	return out, nil
}

// GoClient connects twice with crypto/tls sharing a ClientSessionCache and
// reports ConnectionState().DidResume.
func GoClient(ctx context.Context, tg Target) ([]Report, error) {
	roots := x509.NewCertPool()
	roots.AddCert(tg.Cert.TLS.Leaf)
	cfg := &tls.Config{
		ServerName:         "localhost",
		RootCAs:            roots,
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
		MinVersion:         tg.Version,
		MaxVersion:         tg.Version,
	}
	var out []Report
	for range 2 {
		r, err := goConnect(ctx, cfg, tg.addr())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func goConnect(ctx context.Context, cfg *tls.Config, addr string) (Report, error) {
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Report{}, fmt.Errorf("go client: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return Report{}, fmt.Errorf("go client: writing request: %w", err)
	}
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, io.EOF) {
		return Report{}, fmt.Errorf("go client: reading response: %w", err)
	}
	tc := c.(*tls.Conn)
	return Report{Port: c.LocalAddr().(*net.TCPAddr).Port, Resumed: tc.ConnectionState().DidResume}, nil
}

// Chromium loads Page from a GoServer with headless chromium (DumpDOM,
// which retries the flakes it knows); the page's sub-resources are fetched
// over new connections, which resume. Chromium prints no verdict: take
// GoServer.Resumed.
func Chromium(ctx context.Context, chromium string, tg Target) error {
	dom, stderr, err := DumpDOM(ctx, chromium, ChromiumPage{
		URL: tg.url("/"), Dir: tg.Dir, Logf: tg.Logf,
		Flags: []string{"--ignore-certificate-errors"},
	})
	switch {
	case err != nil:
		return err
	case strings.TrimSpace(dom) == "":
		return fmt.Errorf("chromium printed nothing (stderr: %s)", Tail(stderr, 600))
	case !strings.Contains(dom, `id="done"`):
		return fmt.Errorf("chromium did not load the page: %s", Tail(dom, 400))
	}
	return nil
}
