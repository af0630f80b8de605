package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// deviceProxy is `tlsresume proxy --wireguard` with a live view, two
// devices (phone, tablet) and a throwaway CA directory.
type deviceProxy struct {
	*cliProxy
	view     string // the view's base URL, "http://127.0.0.1:PORT/"
	wg       string // WireGuard's address
	caDir    string
	endpoint string // written in the configurations
	token    string
}

// startDeviceProxy starts it; the tunnel's DNS forwards to dnsUpstream.
func startDeviceProxy(t *testing.T, token, dnsUpstream string, extra ...string) *deviceProxy {
	t.Helper()
	d := &deviceProxy{caDir: filepath.Join(t.TempDir(), "ca"), endpoint: "192.168.1.20:51820", token: token}
	args := []string{"--listen", "127.0.0.1:0", "--web", "127.0.0.1:0", "--ca-dir", d.caDir,
		"--wireguard", "127.0.0.1:0", "--wireguard-endpoint", d.endpoint, "--peer", "phone,tablet", "--dns-upstream", dnsUpstream}
	if token != "" {
		args = append(args, "--web-token", token)
	}
	d.cliProxy, d.wg = startWGProxy(t, wgListenRE, append(args, extra...)...)
	m := regexp.MustCompile(`Live view: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no live view on the console: %s", d.stderr.String())
	}
	d.view = m[1]
	return d
}

// get asks the view for path with the given request headers (and the
// token as a bearer, when there is one and auth is set).
func (d *deviceProxy) get(t *testing.T, path string, auth bool, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", d.view+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth && d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// deviceKeys reads the device's private key and the server's public key
// from the CA directory.
func deviceKeys(t *testing.T, caDir, name string) (private, serverPublic wireguard.Key) {
	t.Helper()
	dir, err := certs.Dir(caDir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := wireguard.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, _, err := st.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	return dev.PrivateKey, st.ServerKey().Public()
}

// TestDevicePageAPI: the device page's API on a real proxy with
// --wireguard and a token. The configuration and its QR code are served
// to the view's own page and to a script with the token, with no-store,
// nosniff and no-referrer; the configuration is the device's wg-quick text
// with its own private key and the server's public key, and zbarimg reads
// the PNG back as that exact text. Another site's page, a request without
// the token and an unknown device get nothing; the device list, the page
// and the console never hold the private key.
func TestDevicePageAPI(t *testing.T) {
	zbar := tlstest.Need(t, "zbarimg")
	d := startDeviceProxy(t, "tok3n", "127.0.0.1:1")
	want := wgConfig(t, d.caDir, "phone", d.endpoint)
	priv, serverPub := deviceKeys(t, d.caDir, "phone")
	privText := base64.StdEncoding.EncodeToString(priv[:])

	for _, tt := range []struct {
		name, path string
		auth       bool
		headers    []string
		code       int
	}{
		{"script", "/api/wireguard/config?peer=phone", true, nil, 200},
		{"own page", "/api/wireguard/config?peer=phone", true, []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"own page, qr", "/api/wireguard/qr?peer=phone", true, []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"cross-site", "/api/wireguard/config?peer=phone", true, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site", "/api/wireguard/config?peer=phone", true, []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"other origin", "/api/wireguard/config?peer=phone", true, []string{"Origin", "http://evil.test"}, 403},
		{"cross-site, qr", "/api/wireguard/qr?peer=phone", true, []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"no token", "/api/wireguard/config?peer=phone", false, nil, 401},
		{"no token, qr", "/api/wireguard/qr?peer=phone", false, nil, 401},
		{"unknown device", "/api/wireguard/config?peer=laptop", true, nil, 404},
		{"no device", "/api/wireguard/qr", true, nil, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := d.get(t, tt.path, tt.auth, tt.headers...)
			if resp.StatusCode != tt.code {
				t.Fatalf("%s: %d %s, want %d", tt.path, resp.StatusCode, body, tt.code)
			}
			for h, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
				if got := resp.Header.Get(h); got != v {
					t.Errorf("%s: %s %q, want %q", tt.path, h, got, v)
				}
			}
			if tt.code != 200 {
				if strings.Contains(string(body), privText) || strings.Contains(string(body), "PrivateKey") {
					t.Errorf("a refusal carries the configuration: %s", body)
				}
				return
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if strings.Contains(tt.path, "/qr") {
				checkQR(t, zbar, resp, body, want)
				return
			}
			checkConf(t, resp, body, want, priv, serverPub)
		})
	}

	t.Run("devices", func(t *testing.T) {
		resp, body := d.get(t, "/api/wireguard/devices", true)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var got struct {
			Endpoint string `json:"endpoint"`
			Devices  []struct {
				Name          string     `json:"name"`
				IPv4          netip.Addr `json:"ipv4"`
				PublicKey     string     `json:"public_key"`
				LastHandshake *time.Time `json:"last_handshake"`
			} `json:"devices"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if got.Endpoint != d.endpoint || len(got.Devices) != 2 || got.Devices[0].Name != "phone" || got.Devices[1].Name != "tablet" ||
			got.Devices[0].IPv4 != netip.MustParseAddr("10.73.0.2") || got.Devices[0].PublicKey != priv.Public().String() ||
			got.Devices[0].LastHandshake != nil {
			t.Errorf("/api/wireguard/devices: %s", body)
		}
	})

	t.Run("no private key", func(t *testing.T) {
		for _, path := range []string{"/api/wireguard/devices", "/devices", "/"} {
			resp, body := d.get(t, path, true)
			if resp.StatusCode != 200 || strings.Contains(string(body), privText) {
				t.Errorf("%s: %d, holds the private key: %v", path, resp.StatusCode, strings.Contains(string(body), privText))
			}
		}
		if _, body := d.get(t, "/", true); !strings.Contains(string(body), `href="/devices"`) {
			t.Error("the live view's page does not link the device page")
		}
		if strings.Contains(d.stderr.String(), privText) {
			t.Error("the console holds the device's private key")
		}
	})
}

// checkConf: the answer is an attachment NAME.conf, the exact text of
// `tlsresume wireguard config`, and wg-quick reads the device's own
// private key and the server's public key from it.
func checkConf(t *testing.T, resp *http.Response, body []byte, want string, priv, serverPub wireguard.Key) {
	t.Helper()
	if got := resp.Header.Get("Content-Disposition"); got != `attachment; filename=phone.conf` && got != `attachment; filename="phone.conf"` {
		t.Errorf("Content-Disposition %q", got)
	}
	if string(body) != want {
		t.Errorf("served:\n%s\nwant (tlsresume wireguard config):\n%s", body, want)
	}
	c, err := tlstest.ParseWGConf(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.PrivateKey != priv || c.PeerKey != serverPub {
		t.Errorf("the configuration's keys are not the device's private key and the server's public key")
	}
}

// checkQR: the answer is a PNG that zbarimg reads back as want, exactly.
func checkQR(t *testing.T, zbar string, resp *http.Response, body []byte, want string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q, want image/png", ct)
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := tlstest.Run(t.Context(), "", zbar, "--raw", "-q", "-Sbinary", path)
	if err != nil {
		t.Fatal(err)
	}
	if out != want {
		t.Errorf("zbarimg read:\n%s\nwant:\n%s", out, want)
	}
}
