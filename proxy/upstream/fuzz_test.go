package upstream

import (
	"bytes"
	"crypto/tls"
	"testing"
	"time"
)

// FuzzLoad feeds the cache file loader arbitrary files. Whatever it
// accepts must save and load again to the same entries.
func FuzzLoad(f *testing.F) {
	var entries []entry
	for i, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cs, _ := realSession(f, v)
		entries = append(entries, entry{
			key: testSNI + "|127.0.0.1:" + string(rune('1'+i)), state: cs,
			from: "seed", storedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		})
		one, err := encodeFile(entries[i:])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(one)
	}
	both, err := encodeFile(entries)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(both)
	f.Add([]byte(`{"format":"tlsresume-upstream-cache","version":1,"entries":[]}`))
	f.Add([]byte(`{"format":"tlsresume-upstream-cache","version":1,"entries":[{"key":"a|b","from":"c","stored_at":"2026-03-01T12:00:00Z","ticket":"AA==","state":"AwMCwC8AAAAAAAAAAQGqAAAAAAEAAAAAAAAAAB0="}]}`))
	f.Add([]byte("{}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeFile(data)
		if err != nil {
			return
		}
		copies := make([]entry, len(got))
		for i, e := range got {
			copies[i] = *e
		}
		saved, err := encodeFile(copies)
		if err != nil {
			t.Fatalf("loaded entries do not save: %v", err)
		}
		again, err := decodeFile(saved)
		if err != nil {
			t.Fatalf("saved file does not load: %v\n%s", err, saved)
		}
		if len(again) != len(got) {
			t.Fatalf("%d entries after a round trip, want %d", len(again), len(got))
		}
		for i := range got {
			a, b := got[i], again[i]
			if a.key != b.key || a.from != b.from || !a.storedAt.Equal(b.storedAt) || a.facts != b.facts {
				t.Fatalf("entry %d changed: %+v became %+v", i, *a, *b)
			}
			ta, sa := resumption(t, a.state)
			tb, sb := resumption(t, b.state)
			if !bytes.Equal(ta, tb) || !bytes.Equal(sa, sb) {
				t.Fatalf("entry %d: session changed in a round trip", i)
			}
		}
	})
}

// resumption returns a session's ticket and encoded state.
func resumption(t *testing.T, cs *tls.ClientSessionState) (ticket, state []byte) {
	t.Helper()
	ticket, s, err := cs.ResumptionState()
	if err != nil {
		t.Fatal(err)
	}
	state, err = s.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return ticket, state
}

// FuzzSessionFacts checks parseSessionFacts against crypto/tls's own
// parser: a client session crypto/tls accepts must be read, and read the
// same after crypto/tls re-encodes it.
func FuzzSessionFacts(f *testing.F) {
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cs, _ := realSession(f, v)
		_, state, err := cs.ResumptionState()
		if err != nil {
			f.Fatal(err)
		}
		b, err := state.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		facts, err := parseSessionFacts(data)
		state, tlsErr := tls.ParseSessionState(data)
		if tlsErr != nil || data[2] != 2 { // client(2); crypto/tls also accepts server sessions
			return
		}
		if err != nil {
			t.Fatalf("crypto/tls parses a client session that parseSessionFacts rejects: %v", err)
		}
		b, err := state.Bytes()
		if err != nil {
			return // e.g. a verified chain crypto/tls cannot re-encode
		}
		again, err := parseSessionFacts(b)
		if err != nil || again != facts {
			t.Fatalf("re-encoded session reads %+v, %v; want %+v", again, err, facts)
		}
	})
}
