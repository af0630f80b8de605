package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// File names inside the CA directory.
const (
	CertFileName = "ca.pem"
	KeyFileName  = "ca-key.pem"
)

// caValidityYears is the CA's lifetime. Root CAs added by a user are exempt
// from the platforms' leaf lifetime limits, and re-trusting a CA on every
// device is the expensive step, so it is long.
const caValidityYears = 10

// backdate is subtracted from every NotBefore so that a client whose clock is
// a little behind still accepts a certificate minted a moment ago.
const backdate = time.Hour

// ErrNoCA is returned (wrapped) by [Load] when the directory holds neither a
// CA certificate nor a key.
var ErrNoCA = errors.New("certs: no CA")

// CA is a loaded certificate authority. Its key never leaves the package: an
// [Issuer] signs with it.
type CA struct {
	// Cert is the CA certificate. Callers must not modify it.
	Cert *x509.Certificate
	// Dir is the absolute directory the CA was loaded from.
	Dir string

	key crypto.Signer
}

// CertFile returns the path of the PEM certificate.
func (ca *CA) CertFile() string { return filepath.Join(ca.Dir, CertFileName) }

// KeyFile returns the path of the PEM private key.
func (ca *CA) KeyFile() string { return filepath.Join(ca.Dir, KeyFileName) }

// Fingerprint returns the SHA-256 of the DER certificate as colon-separated
// upper-case hex, the form iOS, macOS, Firefox and `openssl x509
// -fingerprint -sha256` display, so a user can compare them by eye.
func (ca *CA) Fingerprint() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// shortID is a stable identifier derived from the certificate, used where a
// name must tell two CAs apart (the configuration profile's identifier).
func (ca *CA) shortID() string {
	sum := sha256.Sum256(ca.Cert.Raw)
	return hex.EncodeToString(sum[:8])
}

// Init loads the CA in dir, or creates one there if the directory holds
// neither file. created reports which. It never overwrites a file: a
// directory with only one of the two files, or with a CA that [Load]
// refuses, returns Load's error. now dates the new CA.
func Init(dir string, now time.Time) (ca *CA, created bool, err error) {
	ca, err = Load(dir, now)
	if err == nil || !errors.Is(err, ErrNoCA) {
		return ca, false, err
	}
	if err := refuseSourceTree(dir); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("certs: creating CA directory: %w", err)
	}
	if err := checkDir(dir, 0o700); err != nil {
		return nil, false, err
	}
	ca, certPEM, keyPEM, err := newCA(dir, now, ownerLabel())
	if err != nil {
		return nil, false, err
	}
	// The key goes first and the certificate last, so a directory with a
	// certificate always has its key. If the certificate cannot be written,
	// the key written a moment ago is ours alone and is removed.
	if err := writeNew(ca.KeyFile(), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeNew(ca.CertFile(), certPEM, 0o644); err != nil {
		_ = os.Remove(ca.KeyFile())
		return nil, false, err
	}
	return ca, true, nil
}

// newCA generates a CA key and self-signed certificate and returns both PEM
// encodings. owner ("user@host") goes into the subject with the date so that
// two machines' CAs are told apart in a trust store.
func newCA(dir string, now time.Time, owner string) (ca *CA, certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: generating CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"tlsresume"},
			OrganizationalUnit: []string{truncate(owner, 64)},
			// RFC 5280 appendix A: ub-common-name is 64.
			CommonName: truncate("tlsresume CA "+now.UTC().Format("2006-01-02")+" "+owner, 64),
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// SubjectKeyId is left empty: x509.CreateCertificate derives one
		// for CA certificates, and OpenSSL's -x509_strict requires it.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: parsing new CA certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certs: encoding CA key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	return &CA{Cert: cert, Dir: dir, key: key}, certPEM, keyPEM, nil
}

// Load reads the CA in dir and checks it as of now. It refuses, each with a
// one-line error saying what to do: a directory others can write to, a key
// others can read, a damaged file, a certificate that is not a CA or does
// not match its key, and a CA outside its validity. An empty or missing
// directory yields an error wrapping [ErrNoCA].
func Load(dir string, now time.Time) (*CA, error) {
	if err := checkDir(dir, 0o500); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w in %s; run `tlsresume ca init` to create one", ErrNoCA, dir)
		}
		return nil, err
	}
	certPath := filepath.Join(dir, CertFileName)
	keyPath := filepath.Join(dir, KeyFileName)
	certPEM, certErr := os.ReadFile(certPath)
	keyInfo, keyErr := os.Stat(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s; run `tlsresume ca init` to create one", ErrNoCA, dir)
	case errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("certs: found %s but no %s; restore the certificate from a backup, or %s", keyPath, CertFileName, startOver(dir))
	case errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("certs: found %s but not its key %s; restore the key from a backup, or %s", certPath, KeyFileName, startOver(dir))
	case certErr != nil:
		return nil, fmt.Errorf("certs: reading CA certificate: %w", certErr)
	case keyErr != nil:
		return nil, fmt.Errorf("certs: reading CA key: %w", keyErr)
	}
	if err := checkKeyMode(keyPath, keyInfo); err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: reading CA key: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w; restore it from a backup, or %s", certPath, err, startOver(dir))
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w; restore it from a backup, or %s", keyPath, err, startOver(dir))
	}
	if err := checkPair(cert, key); err != nil {
		return nil, fmt.Errorf("certs: %s and %s: %w; restore the matching pair, or %s", CertFileName, KeyFileName, err, startOver(dir))
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("certs: CA in %s expired on %s; %s, then trust the new CA on your devices", dir, cert.NotAfter.UTC().Format(time.DateOnly), startOver(dir))
	}
	if now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("certs: CA in %s is not valid until %s; check this machine's clock", dir, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return &CA{Cert: cert, Dir: dir, key: key}, nil
}

// startOver is the advice for a CA that cannot be used.
func startOver(dir string) string {
	return fmt.Sprintf("move %s away and run `tlsresume ca init` for a new CA", dir)
}

// parseCert decodes the first PEM CERTIFICATE block.
func parseCert(data []byte) (*x509.Certificate, error) {
	block := findPEM(data, "CERTIFICATE")
	if block == nil {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate: %w", err)
	}
	return cert, nil
}

// parseKey decodes a PKCS #8 "PRIVATE KEY" block (what [Init] writes), or
// the SEC 1 "EC PRIVATE KEY" and PKCS #1 "RSA PRIVATE KEY" blocks that
// `openssl ecparam -genkey` and older tools write.
func parseKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM PRIVATE KEY block")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported key type %T (want ECDSA or RSA)", key)
		}
	}
}

// findPEM returns the first block of type typ, skipping others.
func findPEM(data []byte, typ string) *pem.Block {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil || block.Type == typ {
			return block
		}
	}
}

// checkPair reports whether cert is a CA certificate for key.
func checkPair(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("the certificate does not match the key")
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("the certificate is not a CA certificate")
	}
	return nil
}

// randomSerial returns a positive 128-bit serial number; RFC 5280 section
// 4.1.2.2 allows up to 20 octets, and CA/B Forum BR 7.1 asks for at least
// 64 random bits.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certs: generating serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// ownerLabel returns "user@host" for the CA subject, with what is known.
func ownerLabel() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	return name + "@" + host
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
