package proxy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestRecordLog: each record is on disk when Write returns, as one JSON
// object per line; the file is 0600.
func TestRecordLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conns.jsonl")
	l, err := OpenRecordLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"c1", "c2"} {
		if err := l.Write(&inspect.ConnRecord{ID: id}); err != nil {
			t.Fatal(err)
		}
		if n := countLines(t, path); n != i+1 {
			t.Fatalf("%d lines after %d writes", n, i+1)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

// TestRecordLogRepairsTornLine: a log whose last line was cut short (a
// kill during a write that a full disk made partial) gets a newline before
// the next record, which then parses; the cut line stays as it was.
func TestRecordLogRepairsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conns.jsonl")
	os.WriteFile(path, []byte("{\"id\":\"c1\"}\n{\"id\":\"c2\",\"sni\":\"ha"), 0o600)
	l, err := OpenRecordLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Repaired {
		t.Error("Repaired is false for a log that ended mid-line")
	}
	l.Write(&inspect.ConnRecord{ID: "c3"})
	l.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"id":"c3"`) {
		t.Fatalf("after the repair: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &m); err != nil {
		t.Errorf("the record after the repaired line does not parse: %v", err)
	}
	// A log that ends well is left alone.
	l, _ = OpenRecordLog(path)
	if l.Repaired {
		t.Error("Repaired a log that ended in a newline")
	}
	l.Close()
}

// TestRecordLogWriteErrors: a log that cannot be written (/dev/full) says
// so on every Write and on Close, with the count of records lost.
func TestRecordLogWriteErrors(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	l, err := OpenRecordLog("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(&inspect.ConnRecord{ID: "c1"}); err == nil {
		t.Error("Write to /dev/full returned no error")
	}
	l.Write(&inspect.ConnRecord{ID: "c2"})
	if n := l.Unwritten(); n != 2 {
		t.Errorf("Unwritten %d, want 2", n)
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "2 records could not be written") {
		t.Errorf("Close: %v", err)
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
