package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Cert is a test certificate and its ECDSA P-256 key: TLS for Go servers
// and clients (its Leaf set, its chain ending with the issuer's certificate
// when Issue made it), and, once written (Write, WriteCert), PEM files for
// software that reads files.
type Cert struct {
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// CertOptions says what a test certificate is for. The zero value is a
// server certificate for localhost and 127.0.0.1, valid from an hour ago
// for a day.
type CertOptions struct {
	// Names are the DNS names. The first is also the subject's CommonName
	// when CommonName is empty. When Names, IPs and CommonName are all
	// empty: localhost and 127.0.0.1.
	Names []string
	IPs   []net.IP
	// CommonName is the subject's CN. Default: Names[0].
	CommonName string
	// NotBefore and NotAfter bound its validity. Defaults: an hour ago (a
	// peer's clock may lag), and a day after NotBefore.
	NotBefore, NotAfter time.Time
	// CA lets it sign certificates (Issue): basic constraints CA, key usage
	// cert sign. A self-signed server certificate that is also a CA is both
	// an origin's certificate and the issuer of leaves for other names.
	CA bool
	// ClientAuth makes it a client identity (extended key usage client
	// auth) instead of a server certificate. A CA that issues client
	// identities needs it too: crypto/x509 checks the usage along the chain.
	ClientAuth bool
}

// NewCert makes a self-signed certificate, or ends t.
func NewCert(t testing.TB, o CertOptions) Cert {
	t.Helper()
	c, err := MakeCert(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MakeCert is NewCert for package-level certificates, made before any test
// runs.
func MakeCert(o CertOptions) (Cert, error) {
	return issue(o, nil)
}

// Issue makes a certificate for o signed by c, which must be a CA, or ends
// t. Its chain is the new certificate, then c's.
func (c Cert) Issue(t testing.TB, o CertOptions) Cert {
	t.Helper()
	leaf, err := issue(o, &c)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// Pool returns a pool that trusts c: its own certificate when self-signed,
// its issuer's when Issue made it.
func (c Cert) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	chain := c.TLS.Certificate
	root, err := x509.ParseCertificate(chain[len(chain)-1])
	if err != nil {
		panic(fmt.Sprintf("tlstest: a Cert's own certificate does not parse: %v", err))
	}
	pool.AddCert(root)
	return pool
}

// Write writes c's chain and key as PEM to certFile and keyFile, and
// records their paths in c.
func (c *Cert) Write(t testing.TB, certFile, keyFile string) {
	t.Helper()
	var certPEM []byte
	for _, der := range c.TLS.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(c.TLS.PrivateKey)
	if err != nil {
		t.Fatalf("marshaling key: %v", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatalf("writing certificate: %v", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatalf("writing key: %v", err)
	}
	c.CertFile, c.KeyFile = certFile, keyFile
}

// WriteCert makes a self-signed server certificate for localhost and
// 127.0.0.1 and writes cert.pem and key.pem into dir, which should be a
// t.TempDir.
func WriteCert(t testing.TB, dir string) Cert {
	t.Helper()
	c := NewCert(t, CertOptions{})
	c.Write(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	return c
}

// issue makes the certificate o describes, signed by parent, or self-signed
// when parent is nil.
func issue(o CertOptions, parent *Cert) (Cert, error) {
	if len(o.Names) == 0 && len(o.IPs) == 0 && o.CommonName == "" {
		o.Names, o.IPs = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	if o.CommonName == "" && len(o.Names) > 0 {
		o.CommonName = o.Names[0]
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = o.NotBefore.Add(24 * time.Hour)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, fmt.Errorf("generating key: %w", err)
	}
	// Random serials: NSS (chromium, certutil) refuses two certificates
	// with one issuer and serial.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Cert{}, fmt.Errorf("drawing a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CommonName},
		DNSNames:     o.Names,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.ClientAuth {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if o.CA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	issuer, signer, chain := tmpl, crypto.Signer(key), [][]byte(nil)
	if parent != nil {
		if parent.TLS.Leaf == nil || !parent.TLS.Leaf.IsCA {
			return Cert{}, errors.New("tlstest: issuing a certificate: the parent is not a CA")
		}
		issuer, signer, chain = parent.TLS.Leaf, parent.TLS.PrivateKey.(crypto.Signer), parent.TLS.Certificate
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return Cert{}, fmt.Errorf("creating certificate for %q: %w", o.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Cert{}, fmt.Errorf("parsing the certificate made: %w", err)
	}
	return Cert{TLS: tls.Certificate{
		Certificate: append([][]byte{der}, chain...),
		PrivateKey:  key,
		Leaf:        leaf,
	}}, nil
}
