package upstream

import (
	"container/list"
	"crypto/tls"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// CacheConfig configures a [Cache]. The zero value works; defaults are
// applied in one place, [NewCache].
type CacheConfig struct {
	// Size is the most sessions kept, one per server name + address; the
	// least recently used is evicted to make room. Zero or less means 1024.
	// (--upstream-cache-size)
	Size int

	// TTL is how long a session may be offered after it was stored; an older
	// one is dropped when a Get finds it. Zero or less means 10 minutes, the
	// lifetime of Apple's TLS session cache (Apple Technical Q&A QA1727), so
	// that tlsresume's upstream leg resumes when an Apple client's would.
	// (--upstream-ticket-ttl)
	TTL time.Duration

	// Disabled turns the cache off: every Get misses with result "off" and
	// Put stores nothing, though views still count the tickets received. The
	// file is neither loaded nor written. (--upstream-tickets=false)
	Disabled bool

	// File, if set, is where the sessions persist: NewCache loads it (a
	// missing file is an empty cache) and Save replaces it atomically, mode
	// 0600. The file holds session secrets: a TLS 1.2 master secret in it
	// decrypts the traffic of connections that resumed that session. Empty
	// means no persistence. (--upstream-cache-file)
	File string

	// Now is the cache's clock, used for stored-at times, ages and expiry.
	// Nil means time.Now. If tls.Config.Time is set on the upstream dial, set
	// Now to the same clock, so that "expired" versus "dropped" is decided
	// with crypto/tls's notion of the time.
	Now func() time.Time
}

// Defaults for [CacheConfig].
const (
	DefaultSize = 1024
	DefaultTTL  = 10 * time.Minute // Apple Technical Q&A QA1727: "about 10 minutes"
)

// Cache is tlsresume's client session cache for upstream handshakes. It is
// safe for concurrent use. Handshakes use it through a [View] from [Cache.For].
type Cache struct {
	changes  atomic.Uint64 // puts, drops and flushes: what Autosave watches
	size     int
	ttl      time.Duration
	disabled bool
	file     string
	now      func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element // of *entry
	lru   *list.List               // front: most recently stored or hit
	stats Stats

	saveMu sync.Mutex // serialises Save, so the last call's snapshot wins
}

// entry is one cached session.
type entry struct {
	key      string // sni + "|" + addr
	state    *tls.ClientSessionState
	facts    sessionFacts
	from     string    // connID whose handshake stored it
	storedAt time.Time // by the cache's clock
}

// Stats are the cache's counters since NewCache. Gets = Hits + Misses + TTL
// expiries + Gets while disabled.
type Stats struct {
	Gets      int64 // Get calls, including those while disabled
	Hits      int64 // Gets that handed crypto/tls a session
	Misses    int64 // Gets that found no session
	Puts      int64 // sessions stored (not counted while disabled)
	Evictions int64 // sessions dropped to stay within Size
	// Expiries counts sessions dropped as too old: by the TTL on Get, or by
	// crypto/tls right after a hit because the server's ticket lifetime had
	// passed (such a Get is also counted in Hits).
	Expiries int64
	// Drops counts sessions crypto/tls deleted for another reason (expired
	// or no longer valid certificate, failed handshake); their Gets are
	// counted in Hits.
	Drops   int64
	Entries int // sessions held now
}

// NewCache returns a cache configured by cfg, loaded from cfg.File if that
// is set and exists. A file that cannot be read or parsed is an error and
// is left as it is.
func NewCache(cfg CacheConfig) (*Cache, error) {
	c := &Cache{
		size:     cfg.Size,
		ttl:      cfg.TTL,
		disabled: cfg.Disabled,
		file:     cfg.File,
		now:      cfg.Now,
		byKey:    make(map[string]*list.Element),
		lru:      list.New(),
	}
	if c.size <= 0 {
		c.size = DefaultSize
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.file != "" && !c.disabled {
		if err := c.load(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// For returns a view of the cache for one upstream handshake made for client
// connection connID, to server name sni at addr, the "ip:port" actually
// dialed, presenting the client identity named identity ("" for none; see
// Key). Set it as that handshake's tls.Config.ClientSessionCache, with
// ServerName equal to sni: crypto/tls checks a resumed session's certificate
// against ServerName.
func (c *Cache) For(connID, sni, addr, identity string) *View {
	return &View{c: c, connID: connID, key: Key(sni, addr, identity)}
}

// Key names an origin as the cache does, and as Apple's TLS session cache
// does (seed 001): the server name and the "ip:port" actually dialled. Two
// addresses of one name are two origins: a session made with one is not
// offered to the other. The client identity presented is part of it too: a
// session made with one identity is never resumed with another, so an app
// that uses one identity per URL is asked for each (Apple Technical Q&A
// QA1727, whose bug is exactly a session reused across identities).
// Everything that remembers origins uses this key.
func Key(sni, addr, identity string) string {
	if identity == "" {
		return sni + "|" + addr
	}
	return sni + "|" + addr + "|" + identity
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.lru.Len()
	return s
}

// Flush drops every session. The counters and the file are left alone.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.byKey)
	c.lru.Init()
	c.changes.Add(1)
}

// get looks key up for a Get. It returns a copy of the entry found (hit or
// expired) and the result.
func (c *Cache) get(key string) (entry, inspect.CacheResult, time.Duration) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Gets++
	if c.disabled {
		return entry{}, inspect.CacheOff, 0
	}
	el, ok := c.byKey[key]
	if !ok {
		c.stats.Misses++
		return entry{}, inspect.CacheMiss, 0
	}
	e := el.Value.(*entry)
	age := now.Sub(e.storedAt)
	if age > c.ttl {
		c.removeLocked(el)
		c.stats.Expiries++
		return *e, inspect.CacheExpired, age
	}
	c.lru.MoveToFront(el)
	c.stats.Hits++
	return *e, inspect.CacheHit, age
}

// put stores cs under key, replacing what was there.
func (c *Cache) put(key, from string, cs *tls.ClientSessionState) {
	if c.disabled {
		return
	}
	// Reading the facts encodes the session, certificates included, so do it
	// outside the lock. A session that cannot be encoded could not be saved
	// either; keep it with version 0 (offered "none") rather than lose it.
	facts, _ := clientSessionFacts(cs)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Puts++
	c.changes.Add(1)
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*entry)
		e.state, e.facts, e.from, e.storedAt = cs, facts, from, now
		c.lru.MoveToFront(el)
		return
	}
	e := &entry{key: key, state: cs, facts: facts, from: from, storedAt: now}
	if c.lru.Len() >= c.size {
		// Reuse the least recently used element for the new session.
		el := c.lru.Back()
		old := el.Value.(*entry)
		delete(c.byKey, old.key)
		el.Value = e
		c.lru.MoveToFront(el)
		c.byKey[key] = el
		c.stats.Evictions++
		return
	}
	c.byKey[key] = c.lru.PushFront(e)
}

// drop deletes the session under key if it is still cs, the one crypto/tls
// was handed: a fresher session stored meanwhile by another handshake is
// kept. expired says whether to count it as an expiry or a drop.
func (c *Cache) drop(key string, cs *tls.ClientSessionState, expired bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if expired {
		c.stats.Expiries++
	} else {
		c.stats.Drops++
	}
	if el, ok := c.byKey[key]; ok && el.Value.(*entry).state == cs {
		c.removeLocked(el)
		c.changes.Add(1)
	}
}

func (c *Cache) removeLocked(el *list.Element) {
	delete(c.byKey, el.Value.(*entry).key)
	c.lru.Remove(el)
}

// snapshot returns copies of the entries, most recently used first,
// skipping those past the TTL.
func (c *Cache) snapshot() []entry {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]entry, 0, c.lru.Len())
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry)
		if now.Sub(e.storedAt) > c.ttl {
			continue
		}
		out = append(out, *e)
	}
	return out
}
