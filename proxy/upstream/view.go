package upstream

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// View is a [Cache] as seen by one upstream handshake. It implements
// [tls.ClientSessionCache] and records what that handshake's Get found and
// how many sessions the server sent. Use a new View for each handshake; its
// methods are safe for concurrent use (TLS 1.3 tickets are Put from whatever
// goroutine reads the connection).
type View struct {
	c      *Cache
	connID string
	key    string // Key(sni, addr, identity)

	mu     sync.Mutex
	lookup Lookup
	got    *tls.ClientSessionState // what Get handed crypto/tls
	facts  sessionFacts            // of got
	stored int
}

// Lookup is what a handshake's Get found in the cache.
type Lookup struct {
	// Result is one of:
	//   - hit: a session was handed to crypto/tls. It offers it unless its
	//     version, cipher suite, server name or verification mode no longer
	//     fit the handshake; ConnectionState.DidResume says whether the server
	//     took it.
	//   - miss: no session for this server name + address.
	//   - expired: the session was older than the TTL and was dropped, or
	//     crypto/tls deleted it right after Get (Put(key, nil)) because the
	//     ticket lifetime the server gave had passed. Nothing was offered.
	//   - dropped: crypto/tls deleted the session for another reason: its
	//     certificate had expired or no longer verifies (nothing offered), or
	//     the handshake that offered it failed (RFC 5077, Section 3.2); the
	//     handshake's error tells which. Offered still names what Get handed
	//     over.
	//   - off: the cache is disabled.
	//   - CacheNotAsked (""): crypto/tls never called Get (the handshake failed earlier, or
	//     the view was not used).
	Result inspect.CacheResult
	// From is the connID whose handshake stored the session (hit, expired,
	// dropped).
	From string
	// AgeMS is the session's age in milliseconds when Get found it (hit,
	// expired, dropped).
	AgeMS int64
	// Version is the TLS version the session was made with (hit, dropped):
	// tls.VersionTLS13 offers a "psk", earlier versions a "ticket".
	Version uint16
	// Offered is psk (TLS 1.3 pre_shared_key), ticket (TLS 1.2
	// SessionTicket) or none.
	Offered inspect.Attempt
}

// Lookup says what the Get during the handshake found. It is final once the
// handshake has returned.
func (v *View) Lookup() Lookup {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.lookup
	if l.Offered == "" {
		l.Offered = inspect.AttemptNone
	}
	return l
}

// Stored returns how many sessions the server sent through this view so far,
// counted even when the cache is disabled. In TLS 1.2 they arrive during the
// handshake; in TLS 1.3 after it, when the connection is first read.
func (v *View) Stored() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stored
}

// Get implements [tls.ClientSessionCache]. It ignores crypto/tls's key
// (ServerName, or the remote address without one) and uses the view's.
func (v *View) Get(string) (*tls.ClientSessionState, bool) {
	e, result, age := v.c.get(v.key)
	l := Lookup{Result: result, Offered: inspect.AttemptNone}
	if result == inspect.CacheHit || result == inspect.CacheExpired {
		l.From = e.from
		l.AgeMS = age.Milliseconds()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.got, v.facts = nil, sessionFacts{}
	if result == inspect.CacheHit {
		l.Version = e.facts.version
		l.Offered = e.facts.offered()
		v.got, v.facts = e.state, e.facts
	}
	v.lookup = l
	if v.got == nil {
		return nil, false
	}
	return v.got, true
}

// Put implements [tls.ClientSessionCache]. A nil cs deletes the session this
// view's Get handed out, and nothing else.
func (v *View) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		v.mu.Lock()
		v.stored++
		v.mu.Unlock()
		v.c.put(v.key, v.connID, cs)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.got == nil {
		return
	}
	// crypto/tls deletes a TLS 1.3 session whose use_by has passed by
	// tls.Config.Time (handshake_client.go, loadSession); use_by is the
	// moment it was received plus the server's ticket_lifetime.
	expired := v.facts.useBy != 0 && v.c.now().After(time.Unix(int64(v.facts.useBy), 0))
	v.c.drop(v.key, v.got, expired)
	if expired {
		v.lookup.Result = inspect.CacheExpired
		v.lookup.Version = 0
		v.lookup.Offered = inspect.AttemptNone
	} else {
		v.lookup.Result = inspect.CacheDropped
	}
	v.got = nil
}
