package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
