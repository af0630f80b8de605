package certs

import (
	"context"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// A target is a name a client asks for and the loopback address it reaches.
type target struct {
	name    string
	network string // "tcp4" or "tcp6"
	host    string // the name the client verifies
	ip      string // the address it connects to
}

// targets: a DNS name (the SNI decides the leaf) and IP addresses (no SNI is
// sent, so the server's fallback host decides it).
var targets = []target{
	{"dns", "tcp4", "test.example", "127.0.0.1"},
	{"ipv4", "tcp4", "127.0.0.1", "127.0.0.1"},
	{"ipv6", "tcp6", "::1", "::1"},
}

// url returns the https URL of t's server on port.
func (t target) url(port string) string {
	return "https://" + net.JoinHostPort(t.host, port) + "/"
}

// isIP reports whether the target is addressed by IP.
func (t target) isIP() bool { return net.ParseIP(t.host) != nil }

// clientFixture is a CA written to disk, as a user would hand it to a client.
type clientFixture struct {
	ca     *CA
	iss    *Issuer
	caFile string // PEM
	dir    string
}

func newClientFixture(t *testing.T) *clientFixture {
	t.Helper()
	ca, iss := newTestIssuer(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, FormatPEM.FileName())
	writeFile(t, caFile, mustExport(t, ca, FormatPEM), 0o644)
	return &clientFixture{ca: ca, iss: iss, caFile: caFile, dir: dir}
}

// serve starts a server for tg whose fallback host is the address the
// client connects to, as the proxy passes the original destination.
func (f *clientFixture) serve(t *testing.T, tg target) string {
	return startServer(t, f.iss, tg.network, tg.ip)
}

// otherCAFile writes a different CA's certificate, for negative controls.
func otherCAFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "other.pem")
	writeFile(t, path, mustExport(t, newTestCA(t, time.Now()), FormatPEM), 0o644)
	return path
}

// runCmd runs a client with a deadline and returns its combined output.
func runCmd(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return string(out), err
}

// TestOpenSSLVerifyStrict checks the CA and each leaf against OpenSSL's
// strict RFC 5280 profile, with the sslserver purpose and name checks.
func TestOpenSSLVerifyStrict(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	f := newClientFixture(t)
	out := runClient(t, 30*time.Second, nil, openssl, "verify", "-x509_strict", "-CAfile", f.caFile, f.caFile)
	if !strings.Contains(out, ": OK") {
		t.Errorf("CA: %s", out)
	}
	other := otherCAFile(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			leaf, err := f.iss.Leaf(tg.host)
			if err != nil {
				t.Fatal(err)
			}
			leafFile := filepath.Join(t.TempDir(), "leaf.pem")
			writeFile(t, leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o644)
			name := []string{"-verify_hostname", tg.host}
			if tg.isIP() {
				name = []string{"-verify_ip", tg.host}
			}
			args := append([]string{"verify", "-x509_strict", "-purpose", "sslserver"}, name...)
			out := runClient(t, 30*time.Second, nil, openssl, append(args, "-CAfile", f.caFile, leafFile)...)
			if !strings.Contains(out, leafFile+": OK") {
				t.Errorf("openssl verify: %s", out)
			}
			// Negative control: another CA must not verify it.
			if out, err := runCmd(30*time.Second, nil, openssl, append(args, "-CAfile", other, leafFile)...); err == nil {
				t.Errorf("leaf verified against another CA: %s", out)
			}
		})
	}
}

// TestCurl runs a real curl against a Go TLS server using minted leaves.
func TestCurl(t *testing.T) {
	curl := tlstest.Need(t, "curl")
	f := newClientFixture(t)
	other := otherCAFile(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			port := f.serve(t, tg)
			args := []string{"--silent", "--show-error", "--fail", "--noproxy", "*", "--max-time", "10",
				"--resolve", net.JoinHostPort(tg.host, port) + ":" + tg.ip}
			if tg.network == "tcp6" {
				args = args[:len(args)-2] // curl needs no --resolve for an address
			}
			out := runClient(t, 30*time.Second, nil, curl, append(args, "--cacert", f.caFile, tg.url(port))...)
			if out != serverBody {
				t.Errorf("curl got %q", out)
			}
			// Negative control: with another CA curl must refuse (exit 60).
			out, err := runCmd(30*time.Second, nil, curl, append(args, "--cacert", other, tg.url(port))...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 60 {
				t.Errorf("curl with another CA: err = %v, want exit 60; output %q", err, out)
			}
		})
	}
}

// TestOpenSSLSClient completes handshakes with openssl s_client, failing on
// any verification error and checking the name.
func TestOpenSSLSClient(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	f := newClientFixture(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			port := f.serve(t, tg)
			args := []string{"s_client", "-connect", net.JoinHostPort(tg.ip, port), "-CAfile", f.caFile,
				"-verify_return_error", "-brief"}
			if tg.isIP() {
				args = append(args, "-noservername", "-verify_ip", tg.host)
			} else {
				args = append(args, "-servername", tg.host, "-verify_hostname", tg.host)
			}
			out := runClient(t, 30*time.Second, nil, openssl, args...)
			if !strings.Contains(out, "Verification: OK") {
				t.Errorf("s_client: %s", out)
			}
		})
	}
}

// TestPythonSSL completes handshakes with Python's ssl module, which checks
// the host name (or IP address) against the SAN.
func TestPythonSSL(t *testing.T) {
	python := tlstest.Need(t, "python3")
	f := newClientFixture(t)
	const script = `
import socket, ssl, sys
cafile, host, ip, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cafile)
assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
with socket.create_connection((ip, port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=host) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(s.version(), data.decode().split("\r\n\r\n", 1)[1])
`
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			port := f.serve(t, tg)
			out := runClient(t, 30*time.Second, nil, python, "-c", script, f.caFile, tg.host, tg.ip, port)
			if !strings.Contains(out, serverBody) || !strings.HasPrefix(out, "TLSv1.3") {
				t.Errorf("python ssl: %s", out)
			}
		})
	}
}

// TestChromium loads a page in headless Chromium that trusts the CA only
// through an NSS database in its HOME, as a Linux user would set it up.
func TestChromium(t *testing.T) {
	chromium := tlstest.Need(t, "chromium")
	certutil := tlstest.Need(t, "certutil")
	if testing.Short() {
		t.Skip("headless Chromium takes seconds per page; skipped in -short")
	}
	f := newClientFixture(t)

	newHome := func(t *testing.T, trust bool) string {
		home := t.TempDir()
		db := "sql:" + filepath.Join(home, ".pki", "nssdb")
		if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
			t.Fatal(err)
		}
		runClient(t, 30*time.Second, nil, certutil, "-d", db, "-N", "--empty-password")
		if trust {
			runClient(t, 30*time.Second, nil, certutil, "-d", db, "-A", "-t", "C,,", "-n", "tlsresume test CA", "-i", f.caFile)
		}
		return home
	}
	dumpDOM := func(t *testing.T, home string, tg target, port string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		dom, _, err := tlstest.DumpDOM(ctx, chromium, tlstest.ChromiumPage{
			URL: tg.url(port), Dir: home, Env: []string{"HOME=" + home}, Logf: t.Logf,
			Flags: []string{"--no-proxy-server", "--host-resolver-rules=MAP test.example 127.0.0.1"},
		})
		return dom, err
	}

	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			port := f.serve(t, tg)
			out, err := dumpDOM(t, newHome(t, true), tg, port)
			if err != nil || !strings.Contains(out, "tlsresume-certs-ok") {
				t.Errorf("chromium did not load the page: err = %v\n%s", err, out)
			}
		})
	}
	t.Run("negative control without the CA", func(t *testing.T) {
		tg := targets[0]
		port := f.serve(t, tg)
		out, _ := dumpDOM(t, newHome(t, false), tg, port)
		if strings.Contains(out, "tlsresume-certs-ok") {
			t.Errorf("chromium loaded the page without trusting the CA:\n%s", out)
		}
	})
}
