package certs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

func TestExport(t *testing.T) {
	ca := newTestCA(t, testNow)
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			data, err := ca.Export(f)
			if err != nil {
				t.Fatal(err)
			}
			if f.FileName() == "" || f.ContentType() == "" {
				t.Errorf("format %q has no file name or content type", f)
			}
			switch f {
			case FormatPEM:
				block, rest := pem.Decode(data)
				if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, ca.Cert.Raw) || len(bytes.TrimSpace(rest)) != 0 {
					t.Error("PEM export is not exactly the CA certificate")
				}
			case FormatDER:
				if !bytes.Equal(data, ca.Cert.Raw) {
					t.Error("DER export differs from the CA certificate")
				}
			case FormatMobileConfig:
				if !bytes.HasPrefix(data, []byte("<?xml")) || !bytes.Contains(data, []byte("<string>com.apple.security.root</string>")) {
					t.Error("profile lacks the XML header or the root payload")
				}
			}
		})
	}
	if _, err := ca.Export("p12"); err == nil || !strings.Contains(err.Error(), `unknown export format "p12"`) {
		t.Errorf("Export(p12): err = %v", err)
	}
	if strings.Contains(string(mustExport(t, ca, FormatMobileConfig)), "PRIVATE") {
		t.Error("profile contains private key material")
	}
}

var (
	reIdentifier = regexp.MustCompile(`<key>PayloadIdentifier</key>\s*<string>([^<]+)</string>`)
	reUUID       = regexp.MustCompile(`<key>PayloadUUID</key>\s*<string>([^<]+)</string>`)
)

// TestMobileConfigIdentifiers: identifiers are stable for one CA and differ
// between CAs; UUIDs are fresh on every export.
func TestMobileConfigIdentifiers(t *testing.T) {
	ca := newTestCA(t, testNow)
	a, b := string(mustExport(t, ca, FormatMobileConfig)), string(mustExport(t, ca, FormatMobileConfig))
	other := string(mustExport(t, newTestCA(t, testNow), FormatMobileConfig))
	ids := func(s string) string { return strings.Join(flatten(reIdentifier.FindAllStringSubmatch(s, -1)), " ") }
	if ids(a) == "" || ids(a) != ids(b) {
		t.Errorf("identifiers not stable: %q vs %q", ids(a), ids(b))
	}
	if ids(a) == ids(other) {
		t.Error("two CAs share a PayloadIdentifier; one profile would replace the other")
	}
	uuids := append(flatten(reUUID.FindAllStringSubmatch(a, -1)), flatten(reUUID.FindAllStringSubmatch(b, -1))...)
	seen := map[string]bool{}
	v4 := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	for _, u := range uuids {
		if !v4.MatchString(u) || seen[u] {
			t.Errorf("PayloadUUID %q is not a fresh version 4 UUID (all: %q)", u, uuids)
		}
		seen[u] = true
	}
	if len(uuids) != 4 {
		t.Errorf("found %d PayloadUUIDs in two exports, want 4", len(uuids))
	}
}

// TestMobileConfigPlistlib parses the profile with Python's plistlib, an
// independent plist parser, and checks its payload is byte for byte the CA.
func TestMobileConfigPlistlib(t *testing.T) {
	python := tlstest.Need(t, "python3")
	ca := newTestCA(t, testNow)
	path := filepath.Join(t.TempDir(), FormatMobileConfig.FileName())
	writeFile(t, path, mustExport(t, ca, FormatMobileConfig), 0o644)
	const script = `
import base64, json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f)
inner = p["PayloadContent"]
assert isinstance(inner, list) and len(inner) == 1, inner
r = inner[0]
assert isinstance(r["PayloadContent"], bytes), type(r["PayloadContent"])
print(json.dumps({
    "type": p["PayloadType"], "version": p["PayloadVersion"], "id": p["PayloadIdentifier"],
    "uuid": p["PayloadUUID"], "removal": p["PayloadRemovalDisallowed"], "name": p["PayloadDisplayName"],
    "innerType": r["PayloadType"], "innerVersion": r["PayloadVersion"], "innerId": r["PayloadIdentifier"],
    "innerUUID": r["PayloadUUID"], "file": r["PayloadCertificateFileName"],
    "der": base64.b64encode(r["PayloadContent"]).decode(),
}))
`
	out := runClient(t, 30*time.Second, nil, python, "-c", script, path)
	var got struct {
		Type, ID, UUID, Name, InnerType, InnerID, InnerUUID, File, DER string
		Version, InnerVersion                                          int
		Removal                                                        bool
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("plistlib output %q: %v", out, err)
	}
	der, err := base64.StdEncoding.DecodeString(got.DER)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(der, ca.Cert.Raw) {
		t.Error("payload DER differs from the CA certificate")
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	wantID := "com.github.tlsresume.ca." + hex.EncodeToString(sum[:8])
	if got.Type != "Configuration" || got.InnerType != "com.apple.security.root" || got.Version != 1 || got.InnerVersion != 1 ||
		got.ID != wantID || got.InnerID != wantID+".root" || got.Removal || got.Name != ca.Cert.Subject.CommonName ||
		got.File != "tlsresume-ca.cer" || got.UUID == "" || got.InnerUUID == got.UUID {
		t.Errorf("profile fields: %+v", got)
	}
}

// TestExportOpenSSL reads both certificate exports with OpenSSL and checks
// the fingerprint it computes is the one `ca show` prints.
func TestExportOpenSSL(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	ca := newTestCA(t, testNow)
	dir := t.TempDir()
	for _, tt := range []struct {
		format Format
		inform string
	}{{FormatDER, "der"}, {FormatPEM, "pem"}} {
		t.Run(string(tt.format), func(t *testing.T) {
			path := filepath.Join(dir, tt.format.FileName())
			writeFile(t, path, mustExport(t, ca, tt.format), 0o644)
			out := runClient(t, 30*time.Second, nil, openssl, "x509", "-inform", tt.inform, "-in", path, "-noout", "-fingerprint", "-sha256", "-subject")
			if !strings.Contains(out, "Fingerprint="+ca.Fingerprint()) {
				t.Errorf("openssl output %q lacks fingerprint %s", out, ca.Fingerprint())
			}
			if !strings.Contains(out, "tlsresume CA 2026-03-01") {
				t.Errorf("openssl subject %q lacks the CA name", out)
			}
		})
	}
}

func mustExport(t testing.TB, ca *CA, f Format) []byte {
	t.Helper()
	data, err := ca.Export(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func flatten(m [][]string) []string {
	var s []string
	for _, g := range m {
		s = append(s, g[1])
	}
	return s
}

func TestInstallHints(t *testing.T) {
	hints := InstallHints("/home/a b/ca.pem")
	var all strings.Builder
	for _, h := range hints {
		if h.Platform == "" || len(h.Steps) == 0 {
			t.Errorf("empty hint %+v", h)
		}
		all.WriteString(strings.Join(h.Steps, "\n"))
	}
	for _, want := range []string{
		"Certificate Trust Settings", "network_security_config", "security add-trusted-cert", "update-ca-certificates",
		"security.enterprise_roots.enabled", "--cacert '/home/a b/ca.pem'", "SSL_CERT_FILE=", "NODE_EXTRA_CA_CERTS=", "REQUESTS_CA_BUNDLE=",
		"tlsresume-ca.mobileconfig", "tlsresume-ca.cer",
	} {
		if !strings.Contains(all.String(), want) {
			t.Errorf("hints lack %q", want)
		}
	}
}
