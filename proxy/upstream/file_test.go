package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestSaveRestore: a session saved by one cache resumes from a cache loaded
// from the file, with its origin and age intact.
func TestSaveRestore(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			pki := longPKI(t)
			addr := serve(t, serverConfig(pki, tv.version, false))
			cfg := clientConfig(pki)
			file := filepath.Join(t.TempDir(), "upstream-cache.json")
			clock := tlstest.NewClock(time.Now())

			c1 := newTestCache(t, CacheConfig{File: file, Now: clock.Now})
			dial(t, addr, c1.For("c1", testSNI, addr, ""), cfg)
			if err := c1.Save(); err != nil {
				t.Fatal(err)
			}
			checkMode(t, file)

			clock.Advance(5 * time.Minute)
			c2 := newTestCache(t, CacheConfig{File: file, Now: clock.Now})
			if n := c2.Stats().Entries; n != 1 {
				t.Fatalf("restored cache has %d entries, want 1", n)
			}
			r := dial(t, addr, c2.For("c2", testSNI, addr, ""), cfg)
			check(t, "after restart", r, true, Lookup{Result: "hit", From: "c1", Version: tv.version, Offered: tv.offered})
			if want := (5 * time.Minute).Milliseconds(); r.lookup.AgeMS != want {
				t.Errorf("AgeMS = %d, want %d (stored-at survives the restart)", r.lookup.AgeMS, want)
			}
		})
	}
}

func checkMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if checkModes() && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
}

// TestSave covers what Save writes and when.
func TestSave(t *testing.T) {
	cs, _ := realSession(t, tls.VersionTLS13)

	t.Run("replaces a file with mode 0600", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cache.json")
		c := newTestCache(t, CacheConfig{File: file})
		if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		c.For("c1", testSNI, "127.0.0.1:443", "").Put("", cs)
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		checkMode(t, file)
		if n := len(readFile(t, file).Entries); n != 1 {
			t.Errorf("file has %d entries, want 1", n)
		}
		if m, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp*")); len(m) != 0 {
			t.Errorf("temporary files left: %v", m)
		}
	})

	t.Run("skips expired sessions, keeps LRU order", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cache.json")
		clock := tlstest.NewClock(time.Now())
		c := newTestCache(t, CacheConfig{File: file, Now: clock.Now})
		c.For("old", testSNI, "127.0.0.1:1", "").Put("", cs)
		clock.Advance(11 * time.Minute)
		c.For("a", testSNI, "127.0.0.1:2", "").Put("", cs)
		c.For("b", testSNI, "127.0.0.1:3", "").Put("", cs)
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		var from []string
		for _, e := range readFile(t, file).Entries {
			from = append(from, e.From)
		}
		if got := strings.Join(from, ","); got != "b,a" {
			t.Errorf("saved entries from %s, want b,a", got)
		}
	})

	t.Run("no file configured", func(t *testing.T) {
		if err := newTestCache(t, CacheConfig{}).Save(); err != nil {
			t.Errorf("Save without File: %v", err)
		}
	})

	t.Run("failure loses nothing", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "missing-dir", "cache.json")
		c := newTestCache(t, CacheConfig{File: file})
		c.For("c1", testSNI, "127.0.0.1:443", "").Put("", cs)
		err := c.Save()
		if err == nil || !strings.HasPrefix(err.Error(), "upstream: saving cache to ") {
			t.Fatalf("Save into a missing directory: %v", err)
		}
		if n := c.Stats().Entries; n != 1 {
			t.Errorf("Entries after a failed Save = %d, want 1", n)
		}
	})

	t.Run("loading keeps the most recent Size", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cache.json")
		c := newTestCache(t, CacheConfig{File: file})
		for _, p := range []string{"1", "2", "3"} {
			c.For("c"+p, testSNI, "127.0.0.1:"+p, "").Put("", cs)
		}
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		c2 := newTestCache(t, CacheConfig{File: file, Size: 2})
		if n := c2.Stats().Entries; n != 2 {
			t.Fatalf("Entries = %d, want 2", n)
		}
		for _, p := range []string{"3", "2", "1"} {
			want := inspect.CacheHit
			if p == "1" {
				want = inspect.CacheMiss
			}
			v := c2.For("x", testSNI, "127.0.0.1:"+p, "")
			v.Get("")
			if got := v.Lookup(); got.Result != want || (want == "hit" && got.From != "c"+p) {
				t.Errorf("port %s: %+v, want %s", p, got, want)
			}
		}
	})
}

func readFile(t *testing.T, path string) cacheFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLoadErrors: a file that is not a good cache file is refused with an
// error that says so, and is left as it was.
func TestLoadErrors(t *testing.T) {
	cs, st := realSession(t, tls.VersionTLS12)
	leafDER := st.PeerCertificates[0].Raw
	good, err := encodeFile([]entry{{key: testSNI + "|127.0.0.1:443", state: cs, from: "c1", storedAt: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	var f cacheFile
	if err := json.Unmarshal(good, &f); err != nil {
		t.Fatal(err)
	}
	variant := func(change func(*cacheFile)) []byte {
		g := f
		g.Entries = append([]fileEntry{}, f.Entries...)
		change(&g)
		b, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	second := f.Entries[0]
	second.Key = testSNI + "|127.0.0.1:8443"

	tests := []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"garbage", []byte("\x00\x01 not json"), "invalid JSON at offset 1"},
		{"empty", []byte(""), "file is empty"},
		{"truncated", good[:len(good)/2], "invalid JSON"},
		{"trailing data", append(append([]byte{}, good...), "{}"...), "data after the cache object"},
		{"other format", []byte(`{"format":"x","version":1}`), `format is "x"`},
		{"future version", variant(func(g *cacheFile) { g.Version = 2 }), "format version 2 is not supported"},
		{"wrong type", []byte(`{"format":"tlsresume-upstream-cache","version":"1"}`), `field "version"`},
		{"bad key", variant(func(g *cacheFile) { g.Entries[0].Key = "nobar" }), "entry 0 (key \"nobar\"): key"},
		{"no ticket", variant(func(g *cacheFile) { g.Entries[0].Ticket = nil }), "ticket: missing"},
		{"no time", variant(func(g *cacheFile) { g.Entries[0].StoredAt = time.Time{} }), "stored_at: missing"},
		{"truncated state", variant(func(g *cacheFile) { g.Entries[0].State = g.Entries[0].State[:40] }), "session state: "},
		{"server state", variant(func(g *cacheFile) {
			s := bytes.Clone(g.Entries[0].State)
			s[2] = 1
			g.Entries[0].State = s
		}), "session state: type at offset 2: value 1 is not client(2)"},
		{"bad certificate", variant(func(g *cacheFile) {
			s := bytes.Clone(g.Entries[0].State)
			i := bytes.Index(s, leafDER)
			s[i+1] ^= 0xff // corrupt the DER inside an intact length prefix
			g.Entries[0].State = s
		}), "state: "},
		{"good then bad", variant(func(g *cacheFile) {
			bad := second
			bad.State = []byte{3, 4}
			g.Entries = append(g.Entries, bad)
		}), "entry 1 (key \"upstream.test|127.0.0.1:8443\")"},
		{"duplicate key", variant(func(g *cacheFile) { g.Entries = append(g.Entries, g.Entries[0]) }), "entry 1 (key \"upstream.test|127.0.0.1:443\"): duplicate key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cache.json")
			if err := os.WriteFile(file, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := NewCache(CacheConfig{File: file})
			if err == nil {
				t.Fatalf("NewCache loaded it: %+v", c.Stats())
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "upstream: loading cache file "+file+" (move it aside to start with an empty cache): ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want the prefix and %q", msg, tt.want)
			}
			if after, _ := os.ReadFile(file); !bytes.Equal(after, tt.data) {
				t.Error("the file was changed")
			}
		})
	}

	t.Run("readable by others", func(t *testing.T) {
		if !checkModes() {
			t.Skip("no Unix modes")
		}
		file := filepath.Join(t.TempDir(), "cache.json")
		if err := os.WriteFile(file, good, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := NewCache(CacheConfig{File: file})
		if err == nil || !strings.HasPrefix(err.Error(), "upstream: cache file ") || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("error %v, want a refusal naming chmod 600", err)
		}
	})

	t.Run("missing file is an empty cache", func(t *testing.T) {
		c := newTestCache(t, CacheConfig{File: filepath.Join(t.TempDir(), "none.json")})
		if n := c.Stats().Entries; n != 0 {
			t.Errorf("Entries = %d", n)
		}
	})

	t.Run("good file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cache.json")
		if err := os.WriteFile(file, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if n := newTestCache(t, CacheConfig{File: file}).Stats().Entries; n != 1 {
			t.Errorf("Entries = %d, want 1", n)
		}
	})
}

// TestAutosave: a cache with a file saves itself within the interval after
// a change (a killed proxy loses at most that), and not again while
// nothing changes.
func TestAutosave(t *testing.T) {
	pki := longPKI(t)
	addr := serve(t, serverConfig(pki, tls.VersionTLS13, false))
	file := filepath.Join(t.TempDir(), "upstream-cache.json")
	c := newTestCache(t, CacheConfig{File: file})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Autosave(ctx, 20*time.Millisecond, func(err error) { t.Error(err) }) }()
	defer func() { cancel(); <-done }()

	time.Sleep(60 * time.Millisecond)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("saved before any change: %v", err)
	}
	dial(t, addr, c.For("c1", testSNI, addr, ""), clientConfig(pki))
	var fi os.FileInfo
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if fi, err = os.Stat(file); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no save within 2 s of a change")
		}
	}
	checkMode(t, file)
	restored := newTestCache(t, CacheConfig{File: file})
	if n := restored.Stats().Entries; n != 1 {
		t.Errorf("the autosaved file holds %d sessions, want 1", n)
	}
	time.Sleep(80 * time.Millisecond)
	if fi2, _ := os.Stat(file); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Error("saved again although nothing changed")
	}
}
