package proxy

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/internal/testtool"
)

// TestTicketKeys: keys persist 0600 and reload; rotation puts a new key first
// and keeps the old ones until the ticket lifetime has passed; a corrupt file
// is refused with what to do.
func TestTicketKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket-keys.json")
	now := time.Now()
	k1, err := LoadTicketKeys(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	first := k1.Keys()[0]
	k2, err := LoadTicketKeys(path, now)
	if err != nil || k2.Keys()[0] != first {
		t.Fatalf("reloaded keys differ: %v", err)
	}
	if err := k2.Rotate(now.Add(24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ks := k2.Keys(); len(ks) != 2 || ks[1] != first || ks[0] == first {
		t.Fatalf("after rotation: %d keys, old key second: %v", len(ks), len(ks) == 2 && ks[1] == first)
	}
	if err := k2.Rotate(now.Add(8 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, k := range k2.Keys() {
		if k == first {
			t.Fatal("a key older than the ticket lifetime was kept")
		}
	}
	os.WriteFile(path, []byte("{not json"), 0o600)
	if _, err := LoadTicketKeys(path, now); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("corrupt keys: %v", err)
	}
}

// TestStampRoundTrip: the lineage stamp survives crypto/tls's session
// encoding (SessionState.Extra), and a version 1 stamp (before key ids,
// in tickets a device may still hold) is still read.
func TestStampRoundTrip(t *testing.T) {
	issued := time.Unix(1700000000, 123456789)
	ss := &tls.SessionState{Extra: [][]byte{[]byte("other"), stamp("c42", issued, "0a1b2c3d")}}
	st, ok := readStamp(ss.Extra)
	if !ok || st.connID != "c42" || !st.issued.Equal(issued) || st.keyID != "0a1b2c3d" {
		t.Fatalf("readStamp = %+v %v", st, ok)
	}
	v1 := append(append([]byte("tlsresume/1\x00"), 0x17, 0x97, 0x9c, 0xfe, 0x07, 0x5b, 0xcd, 0x15), "c7"...)
	if st, ok := readStamp([][]byte{v1}); !ok || st.connID != "c7" || st.keyID != "" || st.issued.UnixNano() != 0x17979cfe075bcd15 {
		t.Fatalf("version 1 stamp read as %+v %v", st, ok)
	}
	for _, short := range []string{"tlsresume/1", "tlsresume/2\x00\x01\x02"} {
		if _, ok := readStamp([][]byte{[]byte(short)}); ok {
			t.Fatalf("a short stamp %q was read", short)
		}
	}
}

// TestRotateTicketKeys: after a rotation a client still resumes with its
// older ticket, and the record names the older key; after a rotation that
// forgets, the same ticket is not tlsresume's any more.
func TestRotateTicketKeys(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	cache := tls.NewLRUClientSessionCache(8)
	first := e.srv.TicketKeys()[0].ID
	e.goGet("origin.test", o.addr, cache, 0)
	e.next()
	if err := e.srv.RotateTicketKeys(false); err != nil {
		t.Fatal(err)
	}
	keys := e.srv.TicketKeys()
	if len(keys) != 2 || keys[0].ID == first || !keys[0].Current || keys[1].ID != first {
		t.Fatalf("keys after a rotation: %+v", keys)
	}
	// Go's client offers its newest ticket, c1's, under the first key.
	if resumed, _ := e.goGet("origin.test", o.addr, tls.NewLRUClientSessionCache(8), 0); resumed {
		t.Fatal("a fresh client resumed")
	}
	e.next()
	resumed, _ := e.goGet("origin.test", o.addr, cache, 0)
	r := e.next()
	if !resumed || r.ClientLeg.TicketKeyID != first || r.ClientLeg.TicketFrom != "c1" {
		t.Errorf("after a rotation: resumed %v, client leg %+v (want c1's ticket under key %s)", resumed, r.ClientLeg, first)
	}
	if err := e.srv.RotateTicketKeys(true); err != nil {
		t.Fatal(err)
	}
	if keys := e.srv.TicketKeys(); len(keys) != 1 {
		t.Fatalf("keys after forgetting: %+v", keys)
	}
	resumed, _ = e.goGet("origin.test", o.addr, cache, 0)
	r = e.next()
	if resumed || r.Verdict.Client != inspect.CodeClientTicketNotOurs {
		t.Errorf("after forgetting the keys: resumed %v, verdict %+v", resumed, r.Verdict)
	}
}

// TestKeyLogBothLegs: --keylog gets the secrets of both legs: two distinct
// client randoms per connection (the client's handshake and tlsresume's).
func TestKeyLogBothLegs(t *testing.T) {
	o := startOrigin(t, nil)
	var buf testtool.Buffer
	e := startProxy(t, tempDir(t), func(c *Config) { c.KeyLog = &buf })
	e.goGet("origin.test", o.addr, nil, 0)
	e.next()
	randoms := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("not an NSS key log line: %q", line)
		}
		randoms[f[1]] = true
	}
	if len(randoms) != 2 {
		t.Fatalf("key log holds %d client randoms, want 2 (both legs)", len(randoms))
	}
}

// TestShutdownEmitsOpenConnections: a connection still open at shutdown is
// closed after the grace period and its record is emitted, not lost.
func TestShutdownEmitsOpenConnections(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool()})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	start := time.Now()
	e.stop()
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	select {
	case r := <-e.got:
		if r.ClientLeg == nil || r.ClientLeg.Error != "" {
			t.Errorf("record of the open connection: %+v", r.ClientLeg)
		}
	default:
		t.Fatal("the open connection's record was lost at shutdown")
	}
}

// TestTicketKeysMode: a ticket-keys file that other users may read is
// refused, as the CA key and the upstream cache file are.
func TestTicketKeysMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket-keys.json")
	if _, err := LoadTicketKeys(path, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTicketKeys(path, time.Now())
	if err == nil || !strings.Contains(err.Error(), "accessible by other users (mode 0644); run: chmod 600") {
		t.Fatalf("a 0644 ticket-keys file: %v", err)
	}
}
