package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// -update (readme_flags_test.go) also rewrites proxy/web/testdata/devices.png,
// the README's screenshot of the device page.

// openBrowser opens url in headless Chromium (chromedp drives the
// installed binary) in a 1280×800 window, waits for body[data-loaded], and
// returns its context.
func openBrowser(t *testing.T, url string) context.Context {
	t.Helper()
	bin := tlstest.Need(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The browser lives as long as the context of its first run, which
	// must carry no deadline; a watchdog bounds it instead.
	watchdog := time.AfterFunc(2*time.Minute, cancelCtx)
	t.Cleanup(func() { watchdog.Stop() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	if err := tlstest.Navigate(ctx, url, t.Logf, chromedp.WaitVisible(chromedp.CSS("body[data-loaded]"))); err != nil {
		t.Fatalf("opening %s in Chromium: %v", url, err)
	}
	return ctx
}

// evalJS runs a JavaScript expression in the page and decodes its value.
func evalJS[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitJS waits, at most 10 s, for a JavaScript expression to be true.
func waitJS(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !evalJS[bool](t, ctx, js); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s (%s)", what, js)
		}
	}
}

// TestDevicePageInBrowser: a real proxy with --wireguard and two devices;
// phone, configured from `tlsresume wireguard config`, looks a name up
// through the tunnel's DNS and makes two TLS connections through the proxy,
// tablet never connects. Headless Chromium on the device page shows
// phone's QR code (the image loaded), a download of phone.conf that is the
// configuration, a last handshake seconds ago and its counters, tablet's
// "never", and the CA's install steps for iPhone and Android with their
// files; a third connection is counted without a reload; the page's
// document holds no private key. An image of the QR code on another site's
// page is refused. With -update it takes the README's screenshot, at
// 1280×800, of a throwaway device in a temporary CA directory.
func TestDevicePageInBrowser(t *testing.T) {
	dir := t.TempDir()
	origin, originCA := tlsOriginCLI(t, dir)
	dnsAddr := tlstest.StartDNS(t, map[string][]netip.Addr{"origin.test": {origin.Addr()}})
	logFile := filepath.Join(dir, "conns.jsonl")
	d := startDeviceProxy(t, "", dnsAddr, "--wireguard-local", "--upstream-ca", originCA, "--log", logFile)
	text := wgConfig(t, d.caDir, "phone", d.endpoint)
	peer := tlstest.StartWGPeer(t, text, d.wg)
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := peer.Resolver().LookupNetIP(rctx, "ip4", "origin.test")
	if err != nil || len(addrs) == 0 {
		t.Fatalf("looking origin.test up through the tunnel: %v %v", addrs, err)
	}
	ca, err := certs.Load(d.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cache := tls.NewLRUClientSessionCache(4)
	for range 2 {
		tlsThrough(t, peer, netip.AddrPortFrom(addrs[0], origin.Port()), roots, cache)
	}
	waitRecords(t, logFile, 2)

	ctx := openBrowser(t, d.view+"devices")
	phone, tablet := `.device[data-device="phone"]`, `.device[data-device="tablet"]`
	waitJS(t, ctx, "phone's QR code loaded", fmt.Sprintf(`(() => { const i = document.querySelector('%s img'); return i.complete && i.naturalWidth > 200; })()`, phone))
	waitJS(t, ctx, "phone's TCP connections counted", fmt.Sprintf(`document.querySelector('%s [data-f=tcp]').textContent === "2"`, phone))

	handshake := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('%s [data-f=handshake]').textContent`, phone))
	if !regexp.MustCompile(`^\d+ s ago$`).MatchString(handshake) {
		t.Errorf("phone's last handshake reads %q, want seconds ago", handshake)
	}
	if got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('%s [data-f=handshake]').textContent`, tablet)); got != "never" {
		t.Errorf("tablet's last handshake reads %q, want never", got)
	}
	if got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('%s [data-f=dns]').textContent`, phone)); got == "0" {
		t.Error("phone's DNS queries read 0 after a lookup through the tunnel")
	}
	link := evalJS[[]string](t, ctx, fmt.Sprintf(`(() => { const a = document.querySelector('%s a.conf'); return [a.getAttribute('href'), a.download, a.textContent]; })()`, phone))
	if strings.Join(link, "|") != "/api/wireguard/config?peer=phone|phone.conf|Download phone.conf" {
		t.Errorf("phone's .conf link: %q", link)
	}
	served := evalJS[string](t, ctx, fmt.Sprintf(`fetch(document.querySelector('%s a.conf').href).then(r => r.text())`, phone))
	if served != text {
		t.Errorf("the page's .conf link serves:\n%s\nwant:\n%s", served, text)
	}
	steps := evalJS[string](t, ctx, `document.querySelector('#wg-ca').textContent`)
	files := evalJS[[]string](t, ctx, `[...document.querySelectorAll('#wg-ca a.file')].map(a => a.getAttribute('href'))`)
	if !strings.Contains(steps, "Certificate Trust Settings") || !strings.Contains(steps, "Install a certificate > CA certificate") ||
		strings.Join(files, " ") != "/ca/tlsresume-ca.mobileconfig /ca/tlsresume-ca.cer" {
		t.Errorf("the CA steps: files %v, text %s", files, steps)
	}
	// The page refreshes the counters on its own.
	tlsThrough(t, peer, netip.AddrPortFrom(addrs[0], origin.Port()), roots, cache)
	waitJS(t, ctx, "phone's third connection counted", fmt.Sprintf(`document.querySelector('%s [data-f=tcp]').textContent === "3"`, phone))
	priv, _ := deviceKeys(t, d.caDir, "phone")
	if html := evalJS[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, base64.StdEncoding.EncodeToString(priv[:])) {
		t.Error("the page's document holds phone's private key")
	}
	if *update {
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(filepath.Join("..", "..", "proxy", "web", "testdata", "devices.png"), png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cross-site image", func(t *testing.T) {
		// Another site's page (another loopback port) shows the QR code as
		// an image: the view refuses it, and counts the refusal.
		page := fmt.Sprintf(`<!doctype html><body><img id="q" src="%sapi/wireguard/qr?peer=phone"><script>
const q = document.getElementById("q");
q.onerror = () => { document.body.dataset.qr = "error"; document.body.dataset.loaded = "1"; };
q.onload = () => { document.body.dataset.qr = "loaded"; document.body.dataset.loaded = "1"; };
</script>`, d.view)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, page)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		octx := openBrowser(t, "http://"+ln.Addr().String()+"/")
		if got := evalJS[string](t, octx, `document.body.dataset.qr`); got != "error" {
			t.Errorf("another site's page shows the QR code: %s", got)
		}
		resp, body := d.get(t, "/metrics", false)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `tlsresume_web_requests_refused_total{reason="cross_site"} 1`) {
			t.Errorf("/metrics does not count one cross-site refusal:\n%s", body)
		}
	})
}
