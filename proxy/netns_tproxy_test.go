//go:build linux

package proxy

import (
	"net/netip"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestNetnsTProxy: TestNetnsTransparent with TPROXY instead of REDIRECT.
// The kernel hands the client namespace's connections, destination
// unchanged, to tlsresume's IP_TRANSPARENT listeners; the original
// destination is the accepted socket's local address, and the records say
// so, with both legs resuming the second time. A connection made straight
// to the listener is still refused as not redirected.
//
// Twice: with the intercepted connections untracked, when SO_ORIGINAL_DST
// fails (ENOENT), and with connection tracking on, as on a router that
// NATs its LAN, when SO_ORIGINAL_DST answers with the local address.
func TestNetnsTProxy(t *testing.T) {
	e := newNSEnv(t)
	for _, tracking := range []struct {
		name string
		set  func(t *testing.T, v6 bool)
	}{
		{"notrack", func(t *testing.T, v6 bool) { e.n.notrack(t, v6, 443) }},
		// Any nat rule turns conntrack on in the namespace; this one
		// matches nothing the test sends.
		{"conntrack", func(t *testing.T, v6 bool) { e.n.redirect(t, v6, "tcp", 9, 9) }},
	} {
		t.Run(tracking.name, func(t *testing.T) {
			tracking.set(t, false)
			tracking.set(t, true)
			testTProxy(t, e)
		})
	}
}

func testTProxy(t *testing.T, e *nsEnv) {
	for _, tt := range []struct {
		name   string
		origin netip.Addr
	}{
		{"curl/ipv4/openssl", nsOrigin4},
		{"curl/ipv6/go", nsOriginB6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := e.tproxyProxy(t, nil)
			e.curlTwice(t, p, tt.origin, false)
		})
	}
	for _, tt := range []struct {
		name    string
		origin  netip.Addr
		flag    string
		version string          // the client leg's
		attempt inspect.Attempt // what the second hello offers
	}{
		{"s_client/tls1.3/ipv4/go", nsOriginB4, "-tls1_3", "1.3", "psk"},
		{"s_client/tls1.2/ipv6", nsOrigin6, "-tls1_2", "1.2", "ticket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := e.tproxyProxy(t, nil)
			e.sClientTwice(t, p, tt.origin, tt.flag, tt.version, tt.attempt)
		})
	}
	t.Run("not_redirected", func(t *testing.T) {
		p, port4, port6 := e.tproxyProxy(t, nil)
		e.notRedirected(t, p, port4, port6)
	})
}
