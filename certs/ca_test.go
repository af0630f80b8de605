package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInitCreatesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "ca")
	ca, created, err := Init(dir, testNow)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if !created {
		t.Fatal("created = false for a new directory")
	}
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("basic constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v, want CA with path length 0", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign {
		t.Errorf("KeyUsage = %v, want only cert sign", c.KeyUsage)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("SignatureAlgorithm = %v, want ECDSA-SHA256", c.SignatureAlgorithm)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if want := testNow.Add(-time.Hour); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore = %v, want %v", c.NotBefore, want)
	}
	if want := testNow.AddDate(10, 0, 0); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", c.NotAfter, want)
	}
	if len(c.SubjectKeyId) == 0 {
		t.Error("no SubjectKeyId")
	}
	owner := ownerLabel()
	if cn := c.Subject.CommonName; !strings.HasPrefix(cn, "tlsresume CA 2026-03-01 ") || !strings.Contains(owner, strings.TrimPrefix(cn, "tlsresume CA 2026-03-01 ")) {
		t.Errorf("CommonName = %q, want tlsresume, the date and %q", cn, owner)
	}
	if got := c.Subject.OrganizationalUnit; len(got) != 1 || got[0] != truncate(owner, 64) {
		t.Errorf("OU = %q, want %q", got, owner)
	}

	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{dir, 0o700 | fs.ModeDir}, {ca.KeyFile(), 0o600}, {ca.CertFile(), 0o644}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if checkModes() && fi.Mode() != f.mode {
			t.Errorf("%s: mode %v, want %v", f.path, fi.Mode(), f.mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want ca.pem and ca-key.pem only (no temporary files)", len(entries))
	}

	loaded, err := Load(dir, testNow)
	if err != nil {
		t.Fatalf("Load after Init: %v", err)
	}
	if !bytes.Equal(loaded.Cert.Raw, c.Raw) {
		t.Error("Load returned a different certificate")
	}
}

func TestInitNeverOverwrites(t *testing.T) {
	ca := newTestCA(t, testNow)
	before := snapshot(t, ca.Dir)
	again, created, err := Init(ca.Dir, testNow.Add(time.Hour))
	if err != nil {
		t.Fatalf("second Init: %v", err)
	}
	if created {
		t.Error("second Init reports created = true")
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Error("second Init returned another CA")
	}
	if after := snapshot(t, ca.Dir); after != before {
		t.Error("second Init changed the directory")
	}
}

func TestInitRefusesSourceTree(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), []byte("// comment\nmodule github.com/tlsresume/tlsresume\n\ngo 1.26.0\n"), 0o644)
	dir := filepath.Join(root, "certs", "testdata")
	_, _, err := Init(dir, testNow)
	if err == nil || !strings.Contains(err.Error(), "inside the tlsresume source tree") {
		t.Fatalf("Init in the source tree: err = %v, want a refusal", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Init created %s anyway", dir)
	}

	other := t.TempDir()
	writeFile(t, filepath.Join(other, "go.mod"), []byte("module example.com/tlsresume/tlsresume2\n"), 0o644)
	if _, _, err := Init(filepath.Join(other, "ca"), testNow); err != nil {
		t.Errorf("Init under another module: %v", err)
	}
}

// TestLoadRefuses covers every refusal: each yields its documented message,
// Init gives the same answer instead of creating a CA, and neither touches
// the files.
func TestLoadRefuses(t *testing.T) {
	good := newTestCA(t, testNow)
	goodCert, _ := os.ReadFile(good.CertFile())
	goodKey, _ := os.ReadFile(good.KeyFile())
	other := newTestCA(t, testNow)
	otherKey, _ := os.ReadFile(other.KeyFile())
	iss, err := NewIssuer(good, IssuerOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := iss.Leaf("leaf.example")
	if err != nil {
		t.Fatal(err)
	}
	leafCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]})
	leafKeyDER, _ := x509.MarshalPKCS8PrivateKey(iss.key)
	leafKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: leafKeyDER})

	type files struct {
		cert, key []byte
		keyMode   fs.FileMode
		dirMode   fs.FileMode
	}
	ok := files{cert: goodCert, key: goodKey, keyMode: 0o600, dirMode: 0o700}
	with := func(f func(*files)) files { c := ok; f(&c); return c }

	tests := []struct {
		name      string
		files     files
		now       time.Time
		modesOnly bool // the refusal rests on Unix permission bits
		want      string
	}{
		{"world-readable key", with(func(f *files) { f.keyMode = 0o644 }), testNow, true, "is accessible by other users (mode 0644); run: chmod 600"},
		{"group-readable key", with(func(f *files) { f.keyMode = 0o640 }), testNow, true, "is accessible by other users (mode 0640); run: chmod 600"},
		{"mismatched pair", with(func(f *files) { f.key = otherKey }), testNow, false, "the certificate does not match the key; restore the matching pair, or move"},
		{"not a CA", with(func(f *files) { f.cert, f.key = leafCert, leafKey }), testNow, false, "the certificate is not a CA certificate"},
		{"expired", ok, good.Cert.NotAfter.Add(time.Second), false, "expired on 2036-03-01; move"},
		{"not yet valid", ok, good.Cert.NotBefore.Add(-time.Second), false, "is not valid until 2026-03-01T11:00:00Z; check this machine's clock"},
		{"corrupt certificate PEM", with(func(f *files) { f.cert = []byte("not a certificate\n") }), testNow, false, "ca.pem: no PEM CERTIFICATE block; restore it from a backup, or move"},
		{"corrupt certificate DER", with(func(f *files) {
			f.cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}})
		}), testNow, false, "ca.pem: parsing certificate:"},
		{"corrupt key PEM", with(func(f *files) { f.key = goodKey[:len(goodKey)/2] }), testNow, false, "ca-key.pem: no PEM PRIVATE KEY block; restore it from a backup"},
		{"key without certificate", with(func(f *files) { f.cert = nil }), testNow, false, "but no ca.pem; restore the certificate from a backup, or move"},
		{"certificate without key", with(func(f *files) { f.key = nil }), testNow, false, "but not its key ca-key.pem; restore the key from a backup"},
		{"directory writable by others", with(func(f *files) { f.dirMode = 0o777 }), testNow, true, "is writable by other users (mode 0777), who could replace the CA; run: chmod 700"},
		{"directory writable by group", with(func(f *files) { f.dirMode = 0o770 }), testNow, true, "is writable by other users (mode 0770)"},
		{"directory without owner permissions", with(func(f *files) { f.dirMode = 0o000 }), testNow, true, "lacks owner permissions (mode 0000, need 0500); run: chmod 700"},
		{"empty directory without write permission", files{dirMode: 0o500}, testNow, true, "lacks owner permissions (mode 0500, need 0700); run: chmod 700"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.modesOnly && !checkModes() {
				t.Skip("no Unix permission bits on this platform")
			}
			dir := filepath.Join(t.TempDir(), "ca")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tt.files.cert != nil {
				writeFile(t, filepath.Join(dir, CertFileName), tt.files.cert, 0o644)
			}
			if tt.files.key != nil {
				writeFile(t, filepath.Join(dir, KeyFileName), tt.files.key, tt.files.keyMode)
			}
			if err := os.Chmod(dir, tt.files.dirMode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
			before := snapshot(t, dir)

			_, loadErr := Load(dir, tt.now)
			_, created, initErr := Init(dir, tt.now)
			for _, got := range []struct {
				op  string
				err error
			}{{"Load", loadErr}, {"Init", initErr}} {
				if tt.name == "empty directory without write permission" && got.op == "Load" {
					if !errors.Is(got.err, ErrNoCA) {
						t.Errorf("Load: err = %v, want ErrNoCA", got.err)
					}
					continue
				}
				if got.err == nil || !strings.Contains(got.err.Error(), tt.want) {
					t.Errorf("%s: err = %v\nwant it to contain %q", got.op, got.err, tt.want)
				}
				if got.err != nil && (strings.Contains(got.err.Error(), "\n") || !strings.HasPrefix(got.err.Error(), "certs: ")) {
					t.Errorf("%s: error %q is not one line prefixed certs:", got.op, got.err)
				}
			}
			if created {
				t.Error("Init created a CA over a refused directory")
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("files changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestLoadNoCA(t *testing.T) {
	for _, tt := range []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }},
		{"empty directory", func(t *testing.T) string { return t.TempDir() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.dir(t), testNow)
			if !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "run `tlsresume ca init`") {
				t.Errorf("err = %v, want ErrNoCA with the init hint", err)
			}
		})
	}
}

func TestLoadAcceptsOtherKeyEncodings(t *testing.T) {
	ca := newTestCA(t, testNow)
	sec1, err := x509.MarshalECPrivateKey(ca.key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	// openssl ecparam -genkey writes EC PARAMETERS before the key.
	data := append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	writeFile(t, ca.KeyFile(), data, 0o600)
	if _, err := Load(ca.Dir, testNow); err != nil {
		t.Fatalf("Load with a SEC 1 key: %v", err)
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.pem")
	if err := writeNew(path, []byte("one"), 0o600); err != nil {
		t.Fatalf("first write: %v", err)
	}
	err := writeNew(path, []byte("two"), 0o644)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second write: err = %v, want a refusal wrapping fs.ErrExist", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "one" {
		t.Errorf("content = %q after refused overwrite, want %q", data, "one")
	}
	if fi, _ := os.Stat(path); checkModes() && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d entries left, want 1 (temporary files removed)", len(entries))
	}
	// A write into a missing directory fails before anything is created.
	if err := writeNew(filepath.Join(dir, "absent", "f"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestDir(t *testing.T) {
	config, err := os.UserConfigDir()
	if err != nil {
		t.Skipf("no user config dir: %v", err)
	}
	tests := []struct {
		name, override, env, want string
	}{
		{"default", "", "", filepath.Join(config, "tlsresume")},
		{"environment", "", "/tmp/from-env", "/tmp/from-env"},
		{"flag wins over environment", "/tmp/from-flag", "/tmp/from-env", "/tmp/from-flag"},
		{"relative flag is made absolute", "rel", "", mustAbs(t, "rel")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvHome, tt.env)
			got, err := Dir(tt.override)
			if err != nil {
				t.Fatal(err)
			}
			if got != filepath.FromSlash(tt.want) {
				t.Errorf("Dir(%q) with %s=%q = %q, want %q", tt.override, EnvHome, tt.env, got, tt.want)
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
