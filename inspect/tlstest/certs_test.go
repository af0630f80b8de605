package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// verify checks c's chain against pool for usage and, when name is set,
// for that host name or IP.
func verify(c Cert, pool *x509.CertPool, usage x509.ExtKeyUsage, name string) error {
	inter := x509.NewCertPool()
	for _, der := range c.TLS.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return err
		}
		inter.AddCert(ic)
	}
	_, err := c.TLS.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestCerts(t *testing.T) {
	def := NewCert(t, CertOptions{})
	for _, name := range []string{"localhost", "127.0.0.1"} {
		if err := verify(def, def.Pool(), x509.ExtKeyUsageServerAuth, name); err != nil {
			t.Errorf("default certificate for %s: %v", name, err)
		}
	}
	if err := verify(def, def.Pool(), x509.ExtKeyUsageServerAuth, "other.test"); err == nil {
		t.Error("default certificate verified for other.test")
	}
	if def.TLS.Leaf.IsCA {
		t.Error("default certificate is a CA")
	}

	notAfter := time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second)
	ca := NewCert(t, CertOptions{Names: []string{"origin.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 2)}, NotAfter: notAfter, CA: true})
	if l := ca.TLS.Leaf; !l.IsCA || !l.NotAfter.Equal(notAfter) || l.Subject.CommonName != "origin.test" {
		t.Errorf("CA: IsCA %v, NotAfter %v, CN %q", l.IsCA, l.NotAfter, l.Subject.CommonName)
	}
	leaf := ca.Issue(t, CertOptions{Names: []string{"leaf.test"}})
	if len(leaf.TLS.Certificate) != 2 {
		t.Errorf("issued chain has %d certificates, want 2", len(leaf.TLS.Certificate))
	}
	if err := verify(leaf, leaf.Pool(), x509.ExtKeyUsageServerAuth, "leaf.test"); err != nil {
		t.Errorf("issued leaf: %v", err)
	}
	if err := verify(leaf, def.Pool(), x509.ExtKeyUsageServerAuth, "leaf.test"); err == nil {
		t.Error("issued leaf verified against another root")
	}

	clientCA := NewCert(t, CertOptions{CommonName: "client CA", CA: true, ClientAuth: true})
	alice := clientCA.Issue(t, CertOptions{CommonName: "alice", ClientAuth: true})
	if len(alice.TLS.Leaf.DNSNames)+len(alice.TLS.Leaf.IPAddresses) != 0 {
		t.Errorf("client identity has names %v %v", alice.TLS.Leaf.DNSNames, alice.TLS.Leaf.IPAddresses)
	}
	if err := verify(alice, clientCA.Pool(), x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("client identity: %v", err)
	}
	if _, err := issue(CertOptions{}, &def); err == nil {
		t.Error("a certificate that is not a CA issued one")
	}

	dir := t.TempDir()
	leaf.Write(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"))
	loaded, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile)
	if err != nil || len(loaded.Certificate) != 2 {
		t.Errorf("loading written files: %d certificates, %v", len(loaded.Certificate), err)
	}
}
