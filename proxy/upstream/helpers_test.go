package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// testSNI and otherSNI are the names the test certificate is valid for.
const (
	testSNI  = "upstream.test"
	otherSNI = "other.test"
)

// ioTimeout bounds every handshake and read in the tests.
const ioTimeout = 10 * time.Second

// testPKI is a self-signed server certificate and a pool that trusts it.
type testPKI struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

// newTestPKI makes a self-signed ECDSA certificate for testSNI, otherSNI and
// 127.0.0.1, valid from an hour ago until notAfter.
func newTestPKI(t testing.TB, notAfter time.Time) testPKI {
	t.Helper()
	c := tlstest.NewCert(t, tlstest.CertOptions{
		Names: []string{testSNI, otherSNI}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotAfter: notAfter, CA: true,
	})
	return testPKI{cert: c.TLS, roots: c.Pool()}
}

// longPKI is valid for a year, so that tests may move the client's clock.
func longPKI(t testing.TB) testPKI { return newTestPKI(t, time.Now().Add(365*24*time.Hour)) }

// serverConfig is a Go TLS server speaking only version. noTickets models a
// server that issues no session ticket. Listeners sharing one config share
// its ticket keys, so they accept each other's tickets.
func serverConfig(pki testPKI, version uint16, noTickets bool) *tls.Config {
	return &tls.Config{
		Certificates:           []tls.Certificate{pki.cert},
		MinVersion:             version,
		MaxVersion:             version,
		SessionTicketsDisabled: noTickets,
	}
}

// clientConfig verifies the test certificate for testSNI.
func clientConfig(pki testPKI) *tls.Config {
	return &tls.Config{RootCAs: pki.roots, ServerName: testSNI, MinVersion: tls.VersionTLS12}
}

// serve runs a TLS server on a new loopback port until the test ends. Each
// connection completes the handshake, writes one byte (so a TLS 1.3 client
// reading it has processed the NewSessionTicket sent before it) and waits for
// the client to close. It returns the "ip:port" to dial.
func serve(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(ioTimeout))
				if err := conn.(*tls.Conn).Handshake(); err != nil {
					return // the client's test reports its side
				}
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// result is what one test dial saw.
type result struct {
	state  tls.ConnectionState
	lookup Lookup
	stored int
}

// dial makes one handshake to addr through v, reads the server's byte and
// closes. cfg is cloned, never changed.
func dial(t testing.TB, addr string, v *View, cfg *tls.Config) result {
	t.Helper()
	r, err := tryDial(addr, v, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return r
}

func tryDial(addr string, v *View, cfg *tls.Config) (result, error) {
	cfg = cfg.Clone()
	cfg.ClientSessionCache = v
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, cfg)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return result{}, err
	}
	return result{state: conn.ConnectionState(), lookup: v.Lookup(), stored: v.Stored()}, nil
}

// newTestCache is NewCache that fails the test on error.
func newTestCache(t testing.TB, cfg CacheConfig) *Cache {
	t.Helper()
	c, err := NewCache(cfg)
	if err != nil {
		t.Fatalf("NewCache: %v", err)
	}
	return c
}

// realSession returns a session from a real handshake at version, and the
// connection state of that handshake.
func realSession(t testing.TB, version uint16) (*tls.ClientSessionState, tls.ConnectionState) {
	t.Helper()
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, version, false))
	c := newTestCache(t, CacheConfig{})
	r := dial(t, addr, c.For("seed", testSNI, addr, ""), clientConfig(pki))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Len() != 1 {
		t.Fatalf("realSession: %d sessions cached, want 1", c.lru.Len())
	}
	return c.lru.Front().Value.(*entry).state, r.state
}
