package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestWebCLI: `tlsresume web FILE` serves a saved --log: it prints the
// view's URL, the API has the file's records and summary, the page is
// there, and it stops cleanly when interrupted.
func TestWebCLI(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conns.jsonl")
	writeLog(t, path, storyLog())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"web", "--web", "127.0.0.1:0", path}, &stdout, &stderr) }()

	urlRE := regexp.MustCompile(`Live view: (http://127\.0\.0\.1:\d+/)`)
	var base string
	for deadline := time.Now().Add(5 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no URL printed: %s", stderr.String())
		}
	}
	get := func(path string, v any) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		return string(b)
	}
	var recs struct {
		Records []struct {
			ID string `json:"id"`
		} `json:"records"`
	}
	get("api/records", &recs)
	var ids []string
	for _, r := range recs.Records {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "c1,c2,c3,c4" {
		t.Errorf("records %v, want c1..c4 from the file", ids)
	}
	var sums []struct {
		Program string `json:"program"`
		WhyNot  string `json:"why_not"`
	}
	get("api/summary", &sums)
	if len(sums) != 2 || sums[0].Program != "MyApp/1.0 CFNetwork/1494" || !strings.Contains(sums[0].WhyNot, "client_offered_nothing") {
		t.Errorf("summary %+v", sums)
	}
	if page := get("", nil); !strings.Contains(page, "conns.jsonl") || !strings.Contains(page, `src="/static/app.js"`) {
		t.Errorf("the page does not name its file or lacks its script")
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tlsresume web did not stop when interrupted")
	}
}

// TestWebStreamsALog: tlsresume web hands each record of a log to its view
// as it reads it (issue 18: a log of 66,000 records took some 380 MB, all
// of them held at once before the view had any). With 20,000 records read
// from a pipe that has not ended, the process holds about what the view
// keeps of them, packed, not the records.
func TestWebStreamsALog(t *testing.T) {
	real := readLogFile(t, filepath.Join("..", "..", "proxy", "web", "testdata", "records.jsonl"))
	fifo := filepath.Join(t.TempDir(), "conns.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipe here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var stdout, stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"web", "--web", "127.0.0.1:0", fifo}, &stdout, &stderr) }()
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // once tlsresume web opens it
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range n {
		r := *real[i%len(real)]
		r.ID = fmt.Sprintf("r%d", i+1)
		enc.Encode(&r)
	}
	w.Flush() // all but what the pipe holds (64 kB) has been read
	runtime.GC()
	runtime.ReadMemStats(&after)
	f.Close()
	perRecord := (float64(after.HeapInuse) - float64(before.HeapInuse)) / n
	if perRecord > 1000 {
		t.Errorf("reading a log of %d records, the heap grew by %.0f bytes per record, want at most 1000: the records are held", n, perRecord)
	} else {
		t.Logf("reading a log of %d records, the heap grew by %.0f bytes per record", n, perRecord)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "Live view:"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no view served after the log ended: %s", stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("%d records from", n)) {
		t.Errorf("stderr does not say %d records were read: %s", n, stderr.String())
	}
	cancel()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("tlsresume web did not stop when interrupted")
	}
}

func readLogFile(t *testing.T, path string) []*inspect.ConnRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, bad, _, err := inspect.ReadLog(f)
	if err != nil || bad > 0 || len(recs) == 0 {
		t.Fatalf("%s: %d records, %d bad lines, %v", path, len(recs), bad, err)
	}
	return recs
}
