package proxy

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
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
	var buf tlstest.Buffer
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

// TestTicketKeyCap: however often keys rotate (by hand, through the API or
// --rotate-ticket-keys, none of which waits for --ticket-rotation), at most
// maxTicketKeys are kept, the newest; the oldest go first. A file written
// with more (by an older tlsresume) is cut to the cap when loaded.
func TestTicketKeyCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket-keys.json")
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	k, err := LoadTicketKeys(path, now)
	if err != nil {
		t.Fatal(err)
	}
	const rotations = 1000 // one a minute: all well inside the 7-day lifetime
	for i := 1; i <= rotations; i++ {
		if err := k.Rotate(now.Add(time.Duration(i) * time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	info := k.Info()
	if len(info) != maxTicketKeys || len(k.Keys()) != maxTicketKeys {
		t.Fatalf("after %d rotations: %d keys kept, want the cap %d", rotations, len(info), maxTicketKeys)
	}
	newest, oldest := now.Add(rotations*time.Minute), now.Add((rotations-maxTicketKeys+1)*time.Minute)
	if !info[0].Created.Equal(newest) || !info[len(info)-1].Created.Equal(oldest) {
		t.Errorf("kept keys from %v to %v, want the newest: %v to %v", info[len(info)-1].Created, info[0].Created, oldest, newest)
	}

	// A file holding more keys than the cap loads cut to the cap, newest first.
	many := make([]ticketKey, 3*maxTicketKeys)
	for i := range many {
		many[i] = ticketKey{Key: make([]byte, 32), Created: newest.Add(-time.Duration(i) * time.Minute)}
		many[i].Key[0], many[i].Key[1] = byte(i), byte(i>>8)
	}
	b, _ := json.Marshal(many)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err = LoadTicketKeys(path, newest)
	if err != nil {
		t.Fatal(err)
	}
	if info := k.Info(); len(info) != maxTicketKeys || !info[0].Created.Equal(newest) {
		t.Errorf("loaded %d keys (newest %v), want %d from %v", len(info), info[0].Created, maxTicketKeys, newest)
	}
}

// TestTicketRotationMinimum: a rotation interval under the minimum is
// refused, saying the minimum; the minimum itself is accepted.
func TestTicketRotationMinimum(t *testing.T) {
	dir := tempDir(t)
	ca, _, err := certs.Init(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{time.Millisecond, MinTicketRotation - time.Second, -time.Hour} {
		_, err := New(Config{Issuer: iss, TicketRotation: d})
		if err == nil || !strings.Contains(err.Error(), "at least "+MinTicketRotation.String()) {
			t.Errorf("TicketRotation %v: %v; want a refusal naming the minimum %v", d, err, MinTicketRotation)
		}
	}
	if _, err := New(Config{Issuer: iss, TicketRotation: MinTicketRotation}); err != nil {
		t.Errorf("TicketRotation %v (the minimum): %v", MinTicketRotation, err)
	}
}
