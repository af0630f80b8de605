package certs

import (
	"os"
	"testing"
)

// FuzzParseCA feeds arbitrary certificate and key files to the parsers Load
// uses; a pair they accept must pass or fail checkPair without panicking.
func FuzzParseCA(f *testing.F) {
	ca := newTestCA(f, testNow)
	certPEM, err := os.ReadFile(ca.CertFile())
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := os.ReadFile(ca.KeyFile())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	f.Add(certPEM[:len(certPEM)/2], keyPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, certData, keyData []byte) {
		cert, certErr := parseCert(certData)
		key, keyErr := parseKey(keyData)
		if certErr == nil && keyErr == nil {
			_ = checkPair(cert, key)
		}
	})
}

// FuzzNormalizeName checks that normalization is idempotent and that its
// output is accepted again, so the cache key of a name is stable.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"example.com", "EXAMPLE.com.", "*.example.com", "127.0.0.1", "[::1]", "fe80::1%eth0", "::ffff:1.2.3.4", "a..b", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := normalizeName(s)
		if err != nil {
			return
		}
		again, err := normalizeName(n)
		if err != nil || again != n {
			t.Fatalf("normalizeName(%q) = %q, but normalizeName(%q) = %q, %v", s, n, n, again, err)
		}
	})
}
