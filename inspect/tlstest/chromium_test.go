//go:build linux

package tlstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"
)

func TestRetryReason(t *testing.T) {
	// stderr lines as headless Chromium 156 printed them here.
	const changed = "[14196:14196:1207/023433.985386:ERROR:components/headless/command_handler/headless_command_handler.cc:403] Page load failed: net::ERR_NETWORK_CHANGED\n"
	const untrusted = "[1:1:1207/023448.998619:ERROR:components/headless/command_handler/headless_command_handler.cc:403] Page load failed: net::ERR_CERT_AUTHORITY_INVALID\n"
	for _, tc := range []struct {
		name, dom, stderr string
		retry             bool
	}{
		{"network changed", "", changed, true},
		{"network changed on the page", "<html><body>ERR_NETWORK_CHANGED</body></html>", "", true},
		{"no DOM, no reason", "", "dbus: failed to connect\n", true},
		{"certificate not trusted", "", untrusted, false},
		{"page loaded", `<html><body><p id="done">ok</p></body></html>`, "", false},
	} {
		if got := retryReason(tc.dom, tc.stderr); (got != "") != tc.retry {
			t.Errorf("%s: retryReason = %q, want a retry: %v", tc.name, got, tc.retry)
		}
	}
}

// changingNet is a TLS page server in a network namespace of its own, so
// that no other test's browser sees the changes it makes: while armed, it
// gives a new veth pair an address before each connection's handshake, as
// another test making its namespaces would, which makes Chromium abort
// the load with ERR_NETWORK_CHANGED.
type changingNet struct {
	url      string // the page, https on a loopback port of the namespace
	chromium string // a script that runs Chromium in the namespace
	armed    atomic.Bool
	changes  atomic.Int32
}

func newChangingNet(t *testing.T, ctx context.Context) *changingNet {
	chromium, ip := Need(t, "chromium"), Need(t, "ip")
	if os.Geteuid() != 0 {
		Unavailable(t, "making a network namespace needs root")
	}
	ns := fmt.Sprintf("tlstest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if _, _, err := Run(ctx, "", ip, "netns", "add", ns); err != nil {
		Unavailable(t, "making a network namespace: %v", err)
	}
	t.Cleanup(func() { Run(context.Background(), "", ip, "netns", "del", ns) })
	if _, _, err := Run(ctx, "", ip, "-n", ns, "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	n := &changingNet{}
	n.armed.Store(true)
	change := func() {
		c := n.changes.Add(1)
		veth := fmt.Sprintf("tt%d", c)
		for _, args := range [][]string{
			{"-n", ns, "link", "add", veth, "type", "veth", "peer", "name", veth + "p"},
			{"-n", ns, "addr", "add", fmt.Sprintf("192.0.2.%d/32", c), "dev", veth},
			{"-n", ns, "link", "set", veth, "up"},
		} {
			if _, _, err := Run(ctx, "", ip, args...); err != nil {
				t.Errorf("changing the namespace's network: %v", err)
			}
		}
	}
	ln := &changingListener{Listener: listenIn(t, ns), change: func() {
		if n.armed.Load() && n.changes.Load() < 50 {
			change()
			time.Sleep(300 * time.Millisecond) // Chromium's handshake is under way
		}
	}}
	cert := NewCert(t, CertOptions{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><p id="done">tlstest</p>`)
	}), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)} // Chromium drops spare connections
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert.TLS}}))
	t.Cleanup(func() { srv.Close() })
	n.url = "https://" + ln.Addr().String() + "/"
	n.chromium = filepath.Join(t.TempDir(), "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec %s netns exec %s %s \"$@\"\n", ip, ns, chromium)
	if err := os.WriteFile(n.chromium, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDumpDOMNetworkChanged: DumpDOM loads a page again when Chromium
// aborted it for ERR_NETWORK_CHANGED. The first retry disarms the
// changes; the page must then load.
func TestDumpDOMNetworkChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	n := newChangingNet(t, ctx)
	var retries []string
	var mu sync.Mutex
	dom, stderr, err := DumpDOM(ctx, n.chromium, ChromiumPage{
		URL: n.url, Dir: t.TempDir(),
		Flags: []string{"--ignore-certificate-errors"},
		Logf: func(format string, args ...any) {
			n.armed.Store(false)
			mu.Lock()
			retries = append(retries, fmt.Sprintf(format, args...))
			mu.Unlock()
			t.Logf(format, args...)
		},
	})
	t.Logf("%d network changes", n.changes.Load())
	if err != nil || !strings.Contains(dom, `id="done"`) {
		t.Fatalf("chromium did not load the page: %v: %s (stderr: %s)", err, Tail(dom, 300), Tail(stderr, 600))
	}
	if len(retries) == 0 || !strings.Contains(retries[0], "ERR_NETWORK_CHANGED") {
		t.Errorf("retries %q, want one for ERR_NETWORK_CHANGED", retries)
	}
}

// TestNavigateNetworkChanged: Navigate, for tests that drive Chromium with
// chromedp, loads a page again when Chromium aborted it for
// ERR_NETWORK_CHANGED; the first retry disarms the changes and the page
// must then load. A load that fails for another reason is not retried.
func TestNavigateNetworkChanged(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	n := newChangingNet(t, ctx)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(n.chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-quic", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelCtx := chromedp.NewContext(actx)
	defer func() { cancelCtx(); cancelAlloc() }()
	watchdog := time.AfterFunc(2*time.Minute, cancelCtx) // the browser's context carries no deadline
	defer watchdog.Stop()
	var retries []string
	logf := func(format string, args ...any) {
		n.armed.Store(false)
		retries = append(retries, fmt.Sprintf(format, args...))
		t.Logf(format, args...)
	}
	if err := Navigate(bctx, n.url, logf, chromedp.WaitVisible(chromedp.CSS("#done"))); err != nil {
		t.Fatalf("the page did not load: %v (%d network changes)", err, n.changes.Load())
	}
	t.Logf("%d network changes", n.changes.Load())
	if len(retries) == 0 || !strings.Contains(retries[0], "ERR_NETWORK_CHANGED") {
		t.Errorf("retries %q, want one for ERR_NETWORK_CHANGED", retries)
	}
	retries = nil
	if err := Navigate(bctx, "https://127.0.0.1:1/", logf); err == nil || len(retries) != 0 {
		t.Errorf("a refused connection: %v after %d retries, want an error and none", err, len(retries))
	}
}

// changingListener calls change before handing over each connection.
type changingListener struct {
	net.Listener
	change func()
}

func (l *changingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.change()
	}
	return c, err
}

// listenIn listens on a loopback port of the named network namespace: the
// socket is made on a thread moved into it, and stays there.
func listenIn(t *testing.T, ns string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result)
	go func() {
		// Never unlocked: when this goroutine returns, the runtime ends its
		// thread instead of reusing it in the wrong namespace
		// (runtime.LockOSThread).
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, fmt.Errorf("entering network namespace %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		done <- result{ln, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}
