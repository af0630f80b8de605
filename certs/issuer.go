package certs

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxLeafValidity is the longest leaf lifetime an [Issuer] accepts. Apple
// platforms reject TLS server certificates valid for more than 825 days
// (Apple HT210176, "Requirements for trusted certificates in iOS 13 and
// macOS 10.15") and, from public CAs, 398 days (Apple HT211025, "About
// upcoming limits on trusted certificates"); browsers hold public CAs to 398
// days too (CA/B Forum BR 6.3.2). 397 days keeps clear of every off-by-one
// in how those limits are counted.
const MaxLeafValidity = 397 * 24 * time.Hour

// IssuerOptions configures an [Issuer]. The zero value is ready to use.
type IssuerOptions struct {
	// Validity is each leaf's lifetime, from its NotBefore (backdated one
	// hour against clock skew) to its NotAfter, which is also cut to the
	// CA's NotAfter. Zero means MaxLeafValidity; more than that is refused.
	Validity time.Duration

	// CacheSize bounds the number of leaves kept, least recently used
	// first out. Zero means 1024 (about 4 MB: a leaf keeps about 4 KB).
	CacheSize int

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Issuer mints TLS server leaves signed by a [CA]. It is safe for concurrent
// use.
type Issuer struct {
	ca       *CA
	key      *ecdsa.PrivateKey // shared by every leaf
	keyID    []byte            // the leaves' SubjectKeyId
	validity time.Duration
	size     int
	now      func() time.Time

	mu       sync.Mutex
	lru      list.List // of *entry, most recently used at the front
	byKey    map[string]*list.Element
	inflight map[string]*call

	mints atomic.Int64 // leaves signed, for tests
}

// entry is a cached leaf with the instant it should be replaced.
type entry struct {
	key       string
	cert      *tls.Certificate
	notBefore time.Time
	renewAt   time.Time
}

// call is one mint in flight; later requests for its key wait on done.
type call struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// NewIssuer returns an Issuer for ca, generating the one ECDSA P-256 key that
// all its leaves share, so that minting a leaf is a signature rather than a
// key generation.
func NewIssuer(ca *CA, opts IssuerOptions) (*Issuer, error) {
	if ca == nil || ca.Cert == nil || ca.key == nil {
		return nil, errors.New("certs: NewIssuer needs a CA from Init or Load")
	}
	if opts.Validity < 0 || opts.Validity > MaxLeafValidity {
		return nil, fmt.Errorf("certs: leaf validity %v is outside (0, %v]", opts.Validity, MaxLeafValidity)
	}
	if opts.CacheSize < 0 {
		return nil, fmt.Errorf("certs: negative cache size %d", opts.CacheSize)
	}
	i := &Issuer{
		ca:       ca,
		validity: opts.Validity,
		size:     opts.CacheSize,
		now:      opts.Now,
		byKey:    make(map[string]*list.Element),
		inflight: make(map[string]*call),
	}
	if i.validity == 0 {
		i.validity = MaxLeafValidity
	}
	if i.size == 0 {
		i.size = 1024
	}
	if i.now == nil {
		i.now = time.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generating leaf key: %w", err)
	}
	i.key = key
	// RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256 of
	// the subjectPublicKey, as crypto/x509 derives it for CAs since Go 1.25.
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("certs: leaf key: %w", err)
	}
	sum := sha256.Sum256(pub.Bytes())
	i.keyID = sum[:20]
	return i, nil
}

// Leaf returns a certificate for one DNS name or IP address. host may carry
// a trailing dot, upper case, or IPv6 brackets; it must not carry a port.
// The result is shared: callers must not modify it.
func (i *Issuer) Leaf(host string) (*tls.Certificate, error) {
	name, err := normalizeName(host)
	if err != nil {
		return nil, err
	}
	return i.get(name, nil)
}

// LeafFor returns a certificate whose subject alternative names are all of
// names: DNS names (wildcards included) and IP addresses, such as the names
// on the origin server's certificate. The cache key is the sorted set, so
// order and duplicates do not matter.
func (i *Issuer) LeafFor(names []string) (*tls.Certificate, error) {
	if len(names) == 0 {
		return nil, errors.New("certs: no names for a leaf certificate")
	}
	norm := make([]string, 0, len(names))
	for _, n := range names {
		name, err := normalizeName(n)
		if err != nil {
			return nil, err
		}
		norm = append(norm, name)
	}
	slices.Sort(norm)
	norm = slices.Compact(norm)
	if len(norm) == 1 {
		return i.get(norm[0], nil)
	}
	return i.get(strings.Join(norm, ","), norm)
}

// GetCertificate returns a [tls.Config] GetCertificate callback that mints
// for the client's SNI. A client that sends no SNI, as every client
// connecting to an IP address does (RFC 6066 section 3 forbids IP literals
// in server_name), gets a leaf for fallbackHost: the CONNECT host or the
// original destination IP.
func (i *Issuer) GetCertificate(fallbackHost string) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := hello.ServerName
		if name == "" {
			name = fallbackHost
		}
		if name == "" {
			return nil, errors.New("certs: client sent no SNI and no fallback host was given")
		}
		return i.Leaf(name)
	}
}

// get returns the cached leaf for key, or mints one for names (nil means
// the single name key). Concurrent misses for one key mint once.
func (i *Issuer) get(key string, names []string) (*tls.Certificate, error) {
	now := i.now()
	i.mu.Lock()
	if el, ok := i.byKey[key]; ok {
		e := el.Value.(*entry)
		if now.Before(e.renewAt) && !now.Before(e.notBefore) {
			i.lru.MoveToFront(el)
			i.mu.Unlock()
			return e.cert, nil
		}
		i.lru.Remove(el)
		delete(i.byKey, key)
	}
	if c, ok := i.inflight[key]; ok {
		i.mu.Unlock()
		<-c.done
		return c.cert, c.err
	}
	c := &call{done: make(chan struct{})}
	i.inflight[key] = c
	i.mu.Unlock()

	if names == nil {
		names = []string{key}
	}
	var e *entry
	e, c.err = i.mint(names, now)
	if c.err == nil {
		e.key = key
		c.cert = e.cert
	}

	i.mu.Lock()
	delete(i.inflight, key)
	if e != nil {
		i.byKey[key] = i.lru.PushFront(e)
		for i.lru.Len() > i.size {
			old := i.lru.Remove(i.lru.Back()).(*entry)
			delete(i.byKey, old.key)
		}
	}
	i.mu.Unlock()
	close(c.done)
	return c.cert, c.err
}

// mint signs a leaf for names, which are normalized, as of now.
func (i *Issuer) mint(names []string, now time.Time) (*entry, error) {
	caCert := i.ca.Cert
	if !now.Before(caCert.NotAfter) {
		return nil, fmt.Errorf("certs: CA expired on %s; cannot sign leaves", caCert.NotAfter.UTC().Format(time.DateOnly))
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-backdate)
	notAfter := notBefore.Add(i.validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// Clients match the SAN, never the CN (RFC 6125 section 6.4.4;
		// HT210176; Go 1.15+), but people read the CN in certificate
		// viewers. A subject is kept non-empty so the SAN may stay
		// non-critical (RFC 5280 section 4.2.1.6).
		Subject: pkix.Name{
			Organization: []string{"tlsresume"},
			CommonName:   commonName(names[0]),
		},
		NotBefore: notBefore,
		NotAfter:  notAfter,
		// ECDSA keys sign; keyEncipherment is for RSA key transport only
		// (RFC 5480 section 3).
		KeyUsage: x509.KeyUsageDigitalSignature,
		// HT210176: TLS server certificates must have EKU serverAuth.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          i.keyID,
	}
	for _, n := range names {
		// HT210176 and Chrome 58+: the host must be in the SAN, an IP
		// as an iPAddress entry (RFC 5280 section 4.2.1.6).
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &i.key.PublicKey, i.ca.key)
	if err != nil {
		return nil, fmt.Errorf("certs: signing leaf for %s: %w", names[0], err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: parsing leaf for %s: %w", names[0], err)
	}
	i.mints.Add(1)
	return &entry{
		cert: &tls.Certificate{
			// The root is not sent: clients that trust it have it (RFC 8446
			// section 4.4.2 lets the sender omit it).
			Certificate: [][]byte{der},
			PrivateKey:  i.key,
			Leaf:        leaf,
		},
		notBefore: notBefore,
		// Renew when nine tenths of the lifetime has passed, so a leaf cut
		// short by the CA's own expiry is still reused for a while.
		renewAt: notBefore.Add(notAfter.Sub(notBefore) / 10 * 9),
	}, nil
}

// commonName returns name if it fits ub-common-name (RFC 5280 appendix A),
// else nothing; the SAN carries it anyway.
func commonName(name string) string {
	if len(name) > 64 {
		return ""
	}
	return name
}
