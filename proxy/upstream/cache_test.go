package upstream

import (
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

var versions = []struct {
	version uint16
	offered inspect.Attempt
}{
	{tls.VersionTLS13, "psk"},
	{tls.VersionTLS12, "ticket"},
}

// check compares what a dial saw with what the test wants.
func check(t *testing.T, what string, r result, resumed bool, want Lookup) {
	t.Helper()
	if r.state.DidResume != resumed {
		t.Errorf("%s: DidResume = %v, want %v", what, r.state.DidResume, resumed)
	}
	got := r.lookup
	if got.Result != want.Result || got.From != want.From || got.Offered != want.Offered || got.Version != want.Version {
		t.Errorf("%s: Lookup = %+v, want %+v (AgeMS not compared)", what, got, want)
	}
}

func checkStats(t *testing.T, c *Cache, want Stats) {
	t.Helper()
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// TestResumption is the basic sequence: a full handshake stores a session,
// the next handshake resumes it and stores a fresh one, and so on.
func TestResumption(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			pki := longPKI(t)
			addr := serve(t, serverConfig(pki, tv.version, false))
			cfg := clientConfig(pki)
			c := newTestCache(t, CacheConfig{})

			r := dial(t, addr, c.For("c1", testSNI, addr, ""), cfg)
			check(t, "first dial", r, false, Lookup{Result: "miss", Offered: "none"})
			if r.state.Version != tv.version {
				t.Fatalf("negotiated %s, want %s", tls.VersionName(r.state.Version), tls.VersionName(tv.version))
			}
			if r.stored != 1 {
				t.Errorf("first dial: Stored = %d, want 1", r.stored)
			}

			r = dial(t, addr, c.For("c2", testSNI, addr, ""), cfg)
			check(t, "second dial", r, true, Lookup{Result: "hit", From: "c1", Version: tv.version, Offered: tv.offered})
			if r.stored != 1 {
				t.Errorf("second dial: Stored = %d, want 1 (Go servers send a new ticket on resumption)", r.stored)
			}

			// The resumed connection's fresh session replaced c1's.
			r = dial(t, addr, c.For("c3", testSNI, addr, ""), cfg)
			check(t, "third dial", r, true, Lookup{Result: "hit", From: "c2", Version: tv.version, Offered: tv.offered})

			checkStats(t, c, Stats{Gets: 3, Hits: 2, Misses: 1, Puts: 3, Entries: 1})
		})
	}
}

// TestKey shows that sessions are keyed by server name + address + port, as
// Apple's cache is (QA1727), not by server name alone as crypto/tls's own
// key is: two listeners sharing ticket keys would resume each other's
// sessions under crypto/tls's key.
func TestKey(t *testing.T) {
	pki := longPKI(t)
	srv := serverConfig(pki, tls.VersionTLS13, false)
	addrA, addrB := serve(t, srv), serve(t, srv)
	cfg := clientConfig(pki)

	t.Run("crypto/tls key resumes across ports", func(t *testing.T) {
		stdCfg := cfg.Clone()
		stdCfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
		for i, addr := range []string{addrA, addrB} {
			conn, err := tls.Dial("tcp", addr, stdCfg)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := conn.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			if resumed := conn.ConnectionState().DidResume; resumed != (i == 1) {
				t.Errorf("dial %d with crypto/tls's cache: DidResume = %v", i, resumed)
			}
			conn.Close()
		}
	})

	c := newTestCache(t, CacheConfig{})
	dial(t, addrA, c.For("c1", testSNI, addrA, ""), cfg)
	otherCfg := cfg.Clone()
	otherCfg.ServerName = otherSNI
	tests := []struct {
		name    string
		sni     string
		addr    string
		cfg     *tls.Config
		resumed bool
		want    Lookup
	}{
		{"other port", testSNI, addrB, cfg, false, Lookup{Result: "miss", Offered: "none"}},
		{"other name", otherSNI, addrA, otherCfg, false, Lookup{Result: "miss", Offered: "none"}},
		{"same name and address", testSNI, addrA, cfg, true, Lookup{Result: "hit", From: "c1", Version: tls.VersionTLS13, Offered: "psk"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dial(t, tt.addr, c.For(fmt.Sprintf("k%d", i), tt.sni, tt.addr, ""), tt.cfg)
			check(t, tt.name, r, tt.resumed, tt.want)
		})
	}
}

// TestTTL checks the Apple-like lifetime: a session nine minutes old
// resumes, one eleven minutes old is expired (QA1727's test of the cache).
func TestTTL(t *testing.T) {
	tests := []struct {
		after   time.Duration
		resumed bool
		want    Lookup
		stats   Stats
	}{
		{9 * time.Minute, true, Lookup{Result: "hit", From: "c1", Version: tls.VersionTLS13, Offered: "psk"},
			Stats{Gets: 2, Hits: 1, Misses: 1, Puts: 2, Entries: 1}},
		{11 * time.Minute, false, Lookup{Result: "expired", From: "c1", Offered: "none"},
			Stats{Gets: 2, Misses: 1, Expiries: 1, Puts: 2, Entries: 1}},
	}
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, tls.VersionTLS13, false))
	cfg := clientConfig(pki)
	for _, tt := range tests {
		t.Run(tt.after.String(), func(t *testing.T) {
			clock := tlstest.NewClock(time.Now())
			c := newTestCache(t, CacheConfig{Now: clock.Now})
			dial(t, addr, c.For("c1", testSNI, addr, ""), cfg)
			clock.Advance(tt.after)
			r := dial(t, addr, c.For("c2", testSNI, addr, ""), cfg)
			check(t, "after "+tt.after.String(), r, tt.resumed, tt.want)
			if r.lookup.AgeMS != tt.after.Milliseconds() {
				t.Errorf("AgeMS = %d, want %d", r.lookup.AgeMS, tt.after.Milliseconds())
			}
			checkStats(t, c, tt.stats)
		})
	}
}

// TestServerTicketLifetime: a TLS 1.3 session past the lifetime the server
// gave its ticket (Go servers: 7 days) is deleted by crypto/tls right after
// Get, which the view reports as "expired" although the cache's TTL had not
// passed.
func TestServerTicketLifetime(t *testing.T) {
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, tls.VersionTLS13, false))
	clock := tlstest.NewClock(time.Now())
	cfg := clientConfig(pki)
	cfg.Time = clock.Now // crypto/tls and the cache share a clock, as they do in the proxy
	c := newTestCache(t, CacheConfig{Now: clock.Now, TTL: 30 * 24 * time.Hour})

	dial(t, addr, c.For("c1", testSNI, addr, ""), cfg)
	clock.Advance(8 * 24 * time.Hour)
	r := dial(t, addr, c.For("c2", testSNI, addr, ""), cfg)
	check(t, "after 8 days", r, false, Lookup{Result: "expired", From: "c1", Offered: "none"})
	checkStats(t, c, Stats{Gets: 2, Hits: 1, Misses: 1, Expiries: 1, Puts: 2, Entries: 1})
}

// TestDropped: crypto/tls deletes a session whose certificate has expired
// (handshake_client.go, loadSession), before any verification.
func TestDropped(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			pki := newTestPKI(t, time.Now().Add(time.Hour))
			addr := serve(t, serverConfig(pki, tv.version, false))
			clock := tlstest.NewClock(time.Now())
			// A TTL longer than the jump keeps the cache's own expiry out of the way.
			c := newTestCache(t, CacheConfig{Now: clock.Now, TTL: 3 * time.Hour})
			dial(t, addr, c.For("c1", testSNI, addr, ""), clientConfig(pki))

			clock.Advance(2 * time.Hour)
			cfg := clientConfig(pki)
			cfg.Time = clock.Now
			cfg.InsecureSkipVerify = true // the certificate has expired by cfg.Time
			r := dial(t, addr, c.For("c2", testSNI, addr, ""), cfg)
			check(t, "expired certificate", r, false, Lookup{Result: "dropped", From: "c1", Version: tv.version, Offered: tv.offered})
			checkStats(t, c, Stats{Gets: 2, Hits: 1, Misses: 1, Drops: 1, Puts: 2, Entries: 1})
		})
	}
}

// TestLRU: Size bounds the cache, evicting the least recently used session.
func TestLRU(t *testing.T) {
	pki := longPKI(t)
	srv := serverConfig(pki, tls.VersionTLS13, false)
	a, b, cAddr := serve(t, srv), serve(t, srv), serve(t, srv)
	cfg := clientConfig(pki)
	c := newTestCache(t, CacheConfig{Size: 2})
	steps := []struct {
		addr   string
		result inspect.CacheResult
	}{
		{a, "miss"},
		{b, "miss"},
		{a, "hit"},      // a is now the most recently used
		{cAddr, "miss"}, // evicts b
		{b, "miss"},     // evicts a
		{cAddr, "hit"},
		{a, "miss"},
	}
	for i, s := range steps {
		r := dial(t, s.addr, c.For(fmt.Sprint("c", i), testSNI, s.addr, ""), cfg)
		if r.lookup.Result != s.result || r.state.DidResume != (s.result == "hit") {
			t.Errorf("step %d: Result %q DidResume %v, want %q", i, r.lookup.Result, r.state.DidResume, s.result)
		}
	}
	checkStats(t, c, Stats{Gets: 7, Hits: 2, Misses: 5, Puts: 7, Evictions: 3, Entries: 2})
}

// TestDisabled: --upstream-tickets=false never resumes but still counts the
// tickets the server sent.
func TestDisabled(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			pki := longPKI(t)
			addr := serve(t, serverConfig(pki, tv.version, false))
			c := newTestCache(t, CacheConfig{Disabled: true, File: t.TempDir() + "/never-written"})
			for i := range 2 {
				r := dial(t, addr, c.For(fmt.Sprint("c", i), testSNI, addr, ""), clientConfig(pki))
				check(t, fmt.Sprint("dial ", i), r, false, Lookup{Result: "off", Offered: "none"})
				if r.stored != 1 {
					t.Errorf("dial %d: Stored = %d, want 1", i, r.stored)
				}
			}
			checkStats(t, c, Stats{Gets: 2})
			if err := c.Save(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, tls.VersionTLS13, false))
	c := newTestCache(t, CacheConfig{})
	dial(t, addr, c.For("c1", testSNI, addr, ""), clientConfig(pki))
	c.Flush()
	if n := c.Stats().Entries; n != 0 {
		t.Fatalf("Entries after Flush = %d", n)
	}
	r := dial(t, addr, c.For("c2", testSNI, addr, ""), clientConfig(pki))
	check(t, "after Flush", r, false, Lookup{Result: "miss", Offered: "none"})
}

// TestServerWithoutTickets models a server that issues no ticket: nothing is
// stored, and the next handshake misses.
func TestServerWithoutTickets(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			pki := longPKI(t)
			addr := serve(t, serverConfig(pki, tv.version, true))
			c := newTestCache(t, CacheConfig{})
			for i := range 2 {
				r := dial(t, addr, c.For(fmt.Sprint("c", i), testSNI, addr, ""), clientConfig(pki))
				check(t, fmt.Sprint("dial ", i), r, false, Lookup{Result: "miss", Offered: "none"})
				if r.stored != 0 {
					t.Errorf("dial %d: Stored = %d after reading application data, want 0", i, r.stored)
				}
			}
			checkStats(t, c, Stats{Gets: 2, Misses: 2})
		})
	}
}

// TestLookupBeforeGet: a view crypto/tls never asked reports nothing.
func TestLookupBeforeGet(t *testing.T) {
	c := newTestCache(t, CacheConfig{})
	if got := c.For("c", testSNI, "127.0.0.1:1", "").Lookup(); got != (Lookup{Offered: "none"}) {
		t.Errorf("Lookup = %+v", got)
	}
}

// TestConcurrent runs handshakes alongside Save, Stats and Flush, for the
// race detector.
func TestConcurrent(t *testing.T) {
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, tls.VersionTLS13, false))
	cfg := clientConfig(pki)
	c := newTestCache(t, CacheConfig{File: t.TempDir() + "/cache.json", Size: 4})
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 64)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				v := c.For(fmt.Sprintf("g%d-%d", g, i), testSNI, addr, "")
				r, err := tryDial(addr, v, cfg)
				if err != nil {
					errs <- err
					return
				}
				switch r.lookup.Result {
				case "hit", "miss":
				default:
					errs <- fmt.Errorf("unexpected result %q", r.lookup.Result)
				}
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := c.Save(); err != nil {
				errs <- err
				return
			}
			_ = c.Stats()
			c.Flush()
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(done)
	bg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := c.Stats(); s.Gets != 30 || s.Hits+s.Misses != 30 {
		t.Errorf("Stats = %+v, want 30 Gets, all hits or misses", s)
	}
}
