package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// post sends body to the view's path as JSON, with the given request
// headers (and the token as a bearer, when there is one and auth is set).
func (d *deviceProxy) post(t *testing.T, path, body string, auth bool, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", d.view+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth && d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestAddDevice: a proxy serving phone and tablet is asked by a script
// with the token to serve lab-ipad too: 201 with its addresses and public
// key (never its private key), and from then on without a restart its
// configuration is served, a device configured from it reaches an origin
// through the tunnel, its connection is recorded as lab-ipad's, and
// /metrics counts it. Asking again is 409, a name a device cannot have
// 400; another site's page and a request without the token are refused
// and add nothing.
func TestAddDevice(t *testing.T) {
	dir := t.TempDir()
	origin, originCA := tlsOriginCLI(t, dir)
	logFile := filepath.Join(dir, "conns.jsonl")
	d := startDeviceProxy(t, "tok3n", "127.0.0.1:1", "--wireguard-local", "--upstream-ca", originCA, "--log", logFile)

	for _, tt := range []struct {
		name    string
		body    string
		auth    bool
		headers []string
		code    int
		says    string
	}{
		{"another site's page", `{"name":"evil"}`, true, []string{"Origin", "http://evil.example"}, 403, "this site's own page"},
		{"without the token", `{"name":"evil"}`, false, nil, 401, "token"},
		{"a name a device cannot have", `{"name":"Lab iPad"}`, true, nil, 400, "want 1 to 32 of a-z"},
		{"not JSON", `name=lab-ipad`, true, nil, 400, "want a JSON body"},
		{"a device already served", `{"name":"tablet"}`, true, nil, 409, "already"},
	} {
		resp, body := d.post(t, "/api/wireguard/devices", tt.body, tt.auth, tt.headers...)
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tt.name, resp.StatusCode, body, tt.code, tt.says)
		}
	}

	resp, body := d.post(t, "/api/wireguard/devices", `{"name":"lab-ipad"}`, true)
	var added struct {
		Name      string `json:"name"`
		IPv4      string `json:"ipv4"`
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal(body, &added); err != nil || resp.StatusCode != 201 {
		t.Fatalf("adding lab-ipad: %d %s (%v)", resp.StatusCode, body, err)
	}
	priv, _ := deviceKeys(t, d.caDir, "lab-ipad")
	if added.Name != "lab-ipad" || added.IPv4 != "10.73.0.4" || added.PublicKey != priv.Public().String() {
		t.Errorf("201 says %s, want lab-ipad at 10.73.0.4 with its public key %s", body, priv.Public())
	}
	if strings.Contains(string(body), base64.StdEncoding.EncodeToString(priv[:])) {
		t.Error("the answer holds lab-ipad's private key")
	}
	if resp, body := d.post(t, "/api/wireguard/devices", `{"name":"evil"}`, false); resp.StatusCode == 201 {
		t.Errorf("without the token: %d %s", resp.StatusCode, body)
	}
	_, list := d.get(t, "/api/wireguard/devices", true)
	if strings.Contains(string(list), `"evil"`) || !strings.Contains(string(list), `"lab-ipad"`) {
		t.Errorf("the device list after the refusals and lab-ipad: %s", list)
	}

	resp, conf := d.get(t, "/api/wireguard/config?peer=lab-ipad", true)
	if resp.StatusCode != 200 || !strings.Contains(string(conf), "Address = 10.73.0.4/32") {
		t.Fatalf("lab-ipad's configuration: %d %s", resp.StatusCode, conf)
	}
	peer := tlstest.StartWGPeer(t, string(conf), d.wg)
	ca, err := certs.Load(d.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tlsThrough(t, peer, origin, roots, tls.NewLRUClientSessionCache(1))
	waitRecords(t, logFile, 1)
	recs := readRecords(t, logFile)
	if r := recs[0]; r.Source != inspect.SourceWireGuard || r.Device != "lab-ipad" || !strings.HasPrefix(r.ClientAddr, "10.73.0.4:") {
		t.Errorf("the record: source %s, device %q, client %s; want wireguard, lab-ipad, 10.73.0.4", r.Source, r.Device, r.ClientAddr)
	}
	_, metrics := d.get(t, "/metrics", true)
	if !strings.Contains(string(metrics), `tlsresume_wireguard_tcp_connections_total{device="lab-ipad"} 1`) {
		t.Errorf("/metrics does not count lab-ipad's connection:\n%s", grepLines(string(metrics), "lab-ipad"))
	}
	if !strings.Contains(d.stderr.String(), "added wireguard device") {
		t.Errorf("the console does not say a device was added:\n%s", d.stderr.String())
	}
}

// grepLines returns s's lines that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAddDeviceInBrowser: on the device page in headless Chromium, a name
// typed into "Another device" and Add gives the new device's card at once,
// its QR code loaded, and says so; adding it again says it is served
// already and adds no second card.
func TestAddDeviceInBrowser(t *testing.T) {
	d := startDeviceProxy(t, "", "127.0.0.1:1")
	ctx := openBrowser(t, d.view+"devices")
	add := func(name string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#wg-add-name"), name),
			chromedp.Click(chromedp.CSS(`#wg-add button`))); err != nil {
			t.Fatal(err)
		}
	}
	add("lab-ipad")
	ipad := `.device[data-device="lab-ipad"]`
	waitJS(t, ctx, "lab-ipad's QR code loaded", fmt.Sprintf(`(() => { const i = document.querySelector('%s img'); return !!i && i.complete && i.naturalWidth > 200; })()`, ipad))
	if msg := evalJS[string](t, ctx, `document.querySelector('#wg-add-msg').textContent`); !strings.Contains(msg, "Added lab-ipad") {
		t.Errorf("the form says %q after adding lab-ipad", msg)
	}
	if got := evalJS[string](t, ctx, fmt.Sprintf(`document.querySelector('%s [data-f=handshake]').textContent`, ipad)); got != "never" {
		t.Errorf("lab-ipad's last handshake reads %q, want never", got)
	}
	add("lab-ipad")
	waitJS(t, ctx, "the form says lab-ipad is served already", `document.querySelector('#wg-add-msg').className === "err" && document.querySelector('#wg-add-msg').textContent.includes("already")`)
	if n := evalJS[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('%s').length`, ipad)); n != 1 {
		t.Errorf("%d cards for lab-ipad, want 1", n)
	}
	cards := evalJS[[]string](t, ctx, `[...document.querySelectorAll('.device')].map(e => e.dataset.device)`)
	if strings.Join(cards, ",") != "phone,tablet,lab-ipad" {
		t.Errorf("cards %v, want phone, tablet, lab-ipad", cards)
	}
}
