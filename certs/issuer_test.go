package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

func TestLeafProperties(t *testing.T) {
	ca := newTestCA(t, testNow)
	iss, err := NewIssuer(ca, IssuerOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	tests := []struct {
		name     string
		names    []string
		wantDNS  []string
		wantIPs  []string
		wantCN   string
		verifyAs []string // names x509.Verify must accept
	}{
		{"dns", []string{"test.example"}, []string{"test.example"}, nil, "test.example", []string{"test.example"}},
		{"dns upper case and trailing dot", []string{"Test.Example."}, []string{"test.example"}, nil, "test.example", []string{"test.example"}},
		{"ipv4", []string{"127.0.0.1"}, nil, []string{"127.0.0.1"}, "127.0.0.1", []string{"127.0.0.1"}},
		{"ipv6 in brackets", []string{"[::1]"}, nil, []string{"::1"}, "::1", []string{"::1"}},
		{"ipv4-mapped ipv6", []string{"::ffff:10.0.0.1"}, nil, []string{"10.0.0.1"}, "10.0.0.1", []string{"10.0.0.1"}},
		{"origin names", []string{"www.example.com", "example.com", "*.cdn.example.com", "192.0.2.7", "example.com"},
			[]string{"*.cdn.example.com", "example.com", "www.example.com"}, []string{"192.0.2.7"}, "*.cdn.example.com",
			[]string{"example.com", "www.example.com", "img.cdn.example.com", "192.0.2.7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := iss.LeafFor(tt.names)
			if err != nil {
				t.Fatalf("LeafFor(%q): %v", tt.names, err)
			}
			leaf := cert.Leaf
			if !slices.Equal(leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNSNames = %q, want %q", leaf.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IPAddresses = %q, want %q", ips, tt.wantIPs)
			}
			if leaf.Subject.CommonName != tt.wantCN {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, tt.wantCN)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("ExtKeyUsage = %v, want serverAuth", leaf.ExtKeyUsage)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v, want digitalSignature", leaf.KeyUsage)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want an end-entity certificate", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("SignatureAlgorithm = %v", leaf.SignatureAlgorithm)
			}
			if want := testNow.Add(-time.Hour); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore = %v, want %v (one hour back)", leaf.NotBefore, want)
			}
			if d := leaf.NotAfter.Sub(leaf.NotBefore); d != MaxLeafValidity {
				t.Errorf("validity = %v, want %v", d, MaxLeafValidity)
			}
			if !iss.key.PublicKey.Equal(leaf.PublicKey) {
				t.Error("leaf does not carry the shared leaf key")
			}
			for _, name := range tt.verifyAs {
				_, err := leaf.Verify(x509.VerifyOptions{
					DNSName:     name,
					Roots:       roots,
					CurrentTime: testNow,
					KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				})
				if err != nil {
					t.Errorf("Verify as %q: %v", name, err)
				}
			}
		})
	}
}

func TestLeafRejectsBadNames(t *testing.T) {
	_, iss := newTestIssuer(t)
	for _, name := range []string{"", ".", "[]", "example.com:443", "exa mple.com", "bücher.example", "a..b", ".a", "ex*mple.com", "*", "1.2.3.4.5", "::g", "a..", "[example.com]"} {
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			cert, err := iss.Leaf(name)
			if err == nil {
				t.Fatalf("Leaf(%q) = %v, want an error", name, cert.Leaf.DNSNames)
			}
			if !strings.HasPrefix(err.Error(), "certs: ") {
				t.Errorf("error %q lacks the certs: prefix", err)
			}
		})
	}
	if _, err := iss.LeafFor(nil); err == nil {
		t.Error("LeafFor(nil) succeeded")
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"EXAMPLE.com.", "example.com"},
		{"1password.com", "1password.com"},
		{"_dmarc.example.com", "_dmarc.example.com"},
		{"*.example.com", "*.example.com"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"127.0.0.1", "127.0.0.1"},
		{"[2001:DB8::0001]", "2001:db8::1"},
		{"fe80::1%eth0", "fe80::1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
	}
	for _, tt := range tests {
		got, err := normalizeName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("normalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNewIssuerOptions(t *testing.T) {
	ca := newTestCA(t, testNow)
	for _, tt := range []struct {
		name string
		opts IssuerOptions
		ok   bool
	}{
		{"zero value", IssuerOptions{}, true},
		{"one day", IssuerOptions{Validity: 24 * time.Hour}, true},
		{"at the limit", IssuerOptions{Validity: MaxLeafValidity}, true},
		{"over the limit", IssuerOptions{Validity: MaxLeafValidity + time.Second}, false},
		{"negative validity", IssuerOptions{Validity: -time.Hour}, false},
		{"negative cache", IssuerOptions{CacheSize: -1}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewIssuer(ca, tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("NewIssuer(%+v): err = %v, want ok = %v", tt.opts, err, tt.ok)
			}
		})
	}
	if _, err := NewIssuer(&CA{}, IssuerOptions{}); err == nil {
		t.Error("NewIssuer accepted a CA without a key")
	}
}

func TestLeafCache(t *testing.T) {
	ca := newTestCA(t, testNow)
	clock := tlstest.NewClock(testNow)
	iss, err := NewIssuer(ca, IssuerOptions{CacheSize: 2, Validity: 10 * 24 * time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	get := func(host string) *tls.Certificate {
		t.Helper()
		c, err := iss.Leaf(host)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := get("a.example")
	if get("A.EXAMPLE.") != a {
		t.Error("a differently spelled name was not served from the cache")
	}
	if c, _ := iss.LeafFor([]string{"a.example", "a.example"}); c != a {
		t.Error("LeafFor of one name missed the Leaf cache entry")
	}
	ab, _ := iss.LeafFor([]string{"b.example", "a.example"})
	if ba, _ := iss.LeafFor([]string{"a.example", "b.example"}); ba != ab {
		t.Error("LeafFor depends on the order of names")
	}
	if n := iss.mints.Load(); n != 2 {
		t.Errorf("mints = %d, want 2", n)
	}
	// Size 2: a and {a,b} are cached; c evicts the least recently used.
	get("a.example")
	get("c.example")
	if get("a.example") != a {
		t.Error("recently used entry was evicted")
	}
	if c, _ := iss.LeafFor([]string{"a.example", "b.example"}); c == ab {
		t.Error("least recently used entry was not evicted")
	}
	if got := iss.lru.Len(); got != 2 {
		t.Errorf("cache holds %d entries, want 2", got)
	}

	// Nine tenths into its ten-day life a leaf is replaced.
	clock.Advance(8 * 24 * time.Hour)
	if get("a.example") != a {
		t.Error("leaf replaced too early")
	}
	clock.Advance(24 * time.Hour)
	if fresh := get("a.example"); fresh == a || !fresh.Leaf.NotBefore.Equal(clock.Now().Add(-time.Hour)) {
		t.Error("stale leaf not replaced")
	}
	// A clock that jumps back before a leaf's NotBefore gets a new leaf.
	b := get("b.example")
	clock.Advance(-3 * time.Hour)
	if get("b.example") == b {
		t.Error("leaf not yet valid was served")
	}
}

func TestLeafCutToCALifetime(t *testing.T) {
	ca := newTestCA(t, testNow)
	clock := tlstest.NewClock(ca.Cert.NotAfter.Add(-48 * time.Hour))
	iss, err := NewIssuer(ca, IssuerOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := iss.Leaf("late.example")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", c.Leaf.NotAfter, ca.Cert.NotAfter)
	}
	clock.Advance(49 * time.Hour)
	if _, err := iss.Leaf("late.example"); err == nil || !strings.Contains(err.Error(), "CA expired") {
		t.Errorf("mint after CA expiry: err = %v, want CA expired", err)
	}
}

// TestLeafMintsOnce is the swarm: many goroutines ask for one host at once
// and exactly one signature is made; 1,000 distinct hosts at once each mint
// once.
func TestLeafMintsOnce(t *testing.T) {
	_, iss := newTestIssuer(t)
	const swarm = 200
	var wg sync.WaitGroup
	certs := make([]*tls.Certificate, swarm)
	start := make(chan struct{})
	for g := range swarm {
		wg.Go(func() {
			<-start
			c, err := iss.Leaf("swarm.example")
			if err != nil {
				t.Error(err)
			}
			certs[g] = c
		})
	}
	close(start)
	wg.Wait()
	if n := iss.mints.Load(); n != 1 {
		t.Errorf("swarm of %d minted %d times, want 1", swarm, n)
	}
	for _, c := range certs {
		if c != certs[0] {
			t.Fatal("swarm members got different certificates")
		}
	}

	const hosts = 1000
	for h := range hosts {
		wg.Go(func() {
			for range 2 {
				if _, err := iss.Leaf(fmt.Sprintf("h%d.example", h)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := iss.mints.Load(); n != 1+hosts {
		t.Errorf("%d hosts asked twice minted %d times, want %d", hosts, n-1, hosts)
	}
}

// TestHandshakeSwarmMintsOnce drives concurrent real TLS handshakes with one
// SNI through GetCertificate.
func TestHandshakeSwarmMintsOnce(t *testing.T) {
	ca, iss := newTestIssuer(t)
	port := startServer(t, iss, "tcp4", "127.0.0.1")
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "swarm.test"}}
			conn, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
		})
	}
	wg.Wait()
	if n := iss.mints.Load(); n != 1 {
		t.Errorf("50 handshakes minted %d times, want 1", n)
	}
}

func TestGetCertificate(t *testing.T) {
	_, iss := newTestIssuer(t)
	tests := []struct {
		name, sni, fallback, want string
	}{
		{"sni decides", "sni.example", "10.1.2.3", "sni.example"},
		{"no sni uses the CONNECT host", "", "connect.example", "connect.example"},
		{"no sni uses the destination IP", "", "10.1.2.3", "10.1.2.3"},
		{"nothing to go on", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := iss.GetCertificate(tt.fallback)(&tls.ClientHelloInfo{ServerName: tt.sni})
			if tt.want == "" {
				if err == nil {
					t.Fatal("no error without SNI or fallback")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Leaf.VerifyHostname(tt.want); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCachedLeafDoesNotAllocate(t *testing.T) {
	_, iss := newTestIssuer(t)
	get := iss.GetCertificate("")
	hello := &tls.ClientHelloInfo{ServerName: "alloc.example"}
	for _, host := range []string{"alloc.example", "127.0.0.1", "::1"} {
		if _, err := iss.Leaf(host); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = iss.Leaf(host) }); n != 0 {
			t.Errorf("cached Leaf(%q) allocates %v times", host, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = get(hello) }); n != 0 {
		t.Errorf("cached GetCertificate allocates %v times", n)
	}
}
