package proxy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestRecordLog: records reach the file within the flush delay, as one JSON
// object per line, the file is 0600, and Close writes what is left.
func TestRecordLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conns.jsonl")
	l, err := OpenRecordLog(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&inspect.ConnRecord{ID: "c1"})
	time.Sleep(3 * flushDelay)
	if n := countLines(t, path); n != 1 {
		t.Fatalf("%d lines after the flush delay, want 1", n)
	}
	l.Write(&inspect.ConnRecord{ID: "c2"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, path); n != 2 {
		t.Fatalf("%d lines after Close, want 2", n)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func countLines(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
	}
	return n
}
