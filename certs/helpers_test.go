package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testNow is a fixed instant so that tests do not depend on the clock.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestCA creates a CA in a fresh temporary directory, valid as of now.
func newTestCA(t testing.TB, now time.Time) *CA {
	t.Helper()
	ca, created, err := Init(filepath.Join(t.TempDir(), "ca"), now)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if !created {
		t.Fatal("Init: created = false in an empty directory")
	}
	return ca
}

// newTestIssuer returns an issuer on a new CA, both valid now (the real
// clock, since real clients check validity against it).
func newTestIssuer(t testing.TB) (*CA, *Issuer) {
	t.Helper()
	ca := newTestCA(t, time.Now())
	iss, err := NewIssuer(ca, IssuerOptions{})
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	return ca, iss
}

// serverBody is what the test server answers, so clients can prove they
// read past the handshake.
const serverBody = "<html><body><p id=ok>tlsresume-certs-ok</p></body></html>"

// startServer runs a Go HTTPS server on a loopback address of network
// ("tcp4" or "tcp6") whose leaves come from iss, with fallbackHost for
// clients that send no SNI. It returns the port; the server stops when
// the test ends.
func startServer(t testing.TB, iss *Issuer, network, fallbackHost string) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		if network == "tcp6" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, serverBody)
		}),
		TLSConfig: &tls.Config{
			GetCertificate: iss.GetCertificate(fallbackHost),
			MinVersion:     tls.VersionTLS12,
		},
		// The handshake happens inside the read deadline.
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		// Handshake errors (the negative controls make some) go to the
		// test log, shown with -v or on failure.
		ErrorLog: log.New(testWriter{t}, "server: ", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("server: %v", err)
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// testWriter sends a logger's lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runClient runs a client binary with a deadline and returns its combined
// output, failing the test on a non-zero exit.
func runClient(t testing.TB, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v (deadline %v)\n%s", name, args, err, timeout, out)
	}
	return string(out)
}

// writeFile writes a test fixture, failing the test on error.
func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

// snapshot records the names, contents and modes of the files in dir, to
// prove a refused operation left them untouched.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	s := ""
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		s += fmt.Sprintf("%s %v %x\n", e.Name(), fi.Mode(), data)
	}
	return s
}
