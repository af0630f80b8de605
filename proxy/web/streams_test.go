package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/web"
)

// realRecords returns n copies of the records of two real openssl
// connections through a real proxy (the second one resumed), each
// allocated on its own with an id of its own, as `tlsresume web` loads a
// log.
func realRecords(t *testing.T, n int) []*inspect.ConnRecord {
	t.Helper()
	openssl := tlstest.Need(t, "openssl")
	l := startLive(t, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var real []*inspect.ConnRecord
	for i := range 2 {
		l.openssl(openssl, sess, i == 0)
		real = append(real, l.next())
	}
	out := make([]*inspect.ConnRecord, n)
	for i := range out {
		out[i] = deepCopy(t, real[i%2])
		out[i].ID = fmt.Sprintf("r%d", i+1)
	}
	return out
}

// serveView serves view on a loopback port until the test ends and
// returns its address.
func serveView(t *testing.T, view *web.Server) string {
	t.Helper()
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// openStream sends GET path to addr with the extra header lines. A slow
// one has a receive buffer of 128 kB, as a reader that stops reading
// fills it soon. (Not much smaller: on loopback, whose segments are 64 kB,
// a receiver with a buffer of a few kB never opens a window worth sending
// into, and the sender waits for its persist timer, seconds at a time.)
func openStream(t *testing.T, addr, path, header string, slow bool) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if slow {
		c.(*net.TCPConn).SetReadBuffer(128 << 10)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, addr, header)
	return c
}

// TestReplayHoldsLittle: twenty sockets that ask for the whole history
// (last_event_id=0, some 20 MB) and never read cost the view a bounded
// amount of heap, measured after each has its first byte: the replay is
// written a part at a time as the reader takes it, never built whole.
func TestReplayHoldsLittle(t *testing.T) {
	const n, sockets = 8000, 20
	view := web.New(web.Config{History: n})
	view.Add(realRecords(t, n)...)
	addr := serveView(t, view)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // and what sync.Pools kept over the first
	runtime.ReadMemStats(&before)
	for range sockets {
		c := openStream(t, addr, "/api/events?last_event_id=0", "", true)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil { // the answer began
			t.Fatalf("no answer to the replay request: %v", err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	const bound = sockets * 512 << 10
	t.Logf("heap grew by %.1f MB with %d non-reading replay sockets (bound %d MB)", float64(grown)/(1<<20), sockets, bound>>20)
	if grown > bound {
		t.Errorf("heap grew by %.1f MB with %d non-reading replay sockets, want at most %d MB: the replay is built whole", float64(grown)/(1<<20), sockets, bound>>20)
	}
}

// TestStreamCap: DefaultMaxStreams event streams are served, one more is
// refused with 503 and a message saying why, and /metrics counts it.
func TestStreamCap(t *testing.T) {
	view := web.New(web.Config{})
	addr := serveView(t, view)
	for i := range web.DefaultMaxStreams {
		c := openStream(t, addr, "/api/events", "", false)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %d: %v %v", i+1, resp, err)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second} // a stream served after all ends here
	resp, err := client.Get("http://" + addr + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "too many event streams") {
		t.Fatalf("stream %d: %d %s, want 503 saying there are too many", web.DefaultMaxStreams+1, resp.StatusCode, b)
	}
	if got := metric(t, addr, `tlsresume_web_requests_refused_total{reason="streams_at_cap"}`); got != 1 {
		t.Errorf("refusals at the cap counted %v, want 1", got)
	}
}

// TestSlowReaderResumes: a reader that stops reading while the records
// keep coming is dropped (its buffer and its write deadline are bounded),
// and when it reconnects with the last id it received it gets every
// record it missed, over as many responses as the replay cap needs, and
// none it had.
func TestSlowReaderResumes(t *testing.T) {
	const n = 3000 // some 7 MB of events: more than the sockets' buffers
	recs := realRecords(t, n)
	view := web.New(web.Config{History: n, Streams: web.StreamLimits{
		Buffer: 64 << 10, Replay: 1 << 20, WriteTimeout: 300 * time.Millisecond}})
	addr := serveView(t, view)
	c := openStream(t, addr, "/api/events", "", true)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the stream: %v %v", resp, err)
	}
	view.Add(recs...) // while the reader does not read
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, addr, "tlsresume_web_event_streams_dropped_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a reader 7 MB behind is still served after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// What the view wrote before it dropped the reader, then the end: of
	// the response, or of the connection when a write timed out.
	rest, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("the dropped stream did not end: %v", err)
	}
	seen := map[string]bool{}
	last, _ := readEvents(string(rest), seen)
	t.Logf("the dropped reader had %d of %d records, up to event %s", len(seen), n, last)
	for i := 0; len(seen) < n; i++ {
		if i == 20 {
			t.Fatalf("after 20 reconnections the reader has %d of %d records", len(seen), n)
		}
		had := len(seen)
		body, more := resume(t, addr, last, n-had)
		next, dup := readEvents(body, seen)
		if next != "" {
			last = next
		}
		if dup > 0 {
			t.Errorf("the replay after %s sent %d records again", last, dup)
		}
		t.Logf("reconnection %d: %d records more (more: %v)", i+1, len(seen)-had, more)
		if len(seen) == had {
			t.Fatalf("reconnection %d with Last-Event-ID %s brought no record", i+1, last)
		}
	}
}

// resume reads a stream that resumes after event last until it ends (a
// capped replay) or has want records.
func resume(t *testing.T, addr, last string, want int) (body string, more bool) {
	t.Helper()
	c := openStream(t, addr, "/api/events", "Last-Event-ID: "+last+"\r\n", false)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reconnecting: %v %v", resp, err)
	}
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	got, kind := 0, ""
	for got < want && sc.Scan() {
		line := sc.Text()
		b.WriteString(line + "\n")
		switch {
		case line == "" && kind == "close":
			got++
		case line == "event: more":
			more = true
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			kind = v
		} else if line == "" {
			kind = ""
		}
	}
	c.Close()
	return b.String(), more
}

// readEvents adds the ids of the records in the complete close events of
// body to seen, and returns the last id a complete message carried (or ""
// when none did) and how many records were seen already.
func readEvents(body string, seen map[string]bool) (last string, dup int) {
	events := strings.Split(body, "\n\n")
	for _, ev := range events[:len(events)-1] { // the last one is not complete
		var rec struct {
			ID string `json:"id"`
		}
		for line := range strings.Lines(ev) {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				last = strings.TrimSpace(v) // as EventSource keeps it
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && strings.HasPrefix(ev, "event: close\n") {
				json.Unmarshal([]byte(v), &rec)
			}
		}
		if rec.ID == "" {
			continue
		}
		if seen[rec.ID] {
			dup++
		}
		seen[rec.ID] = true
	}
	return last, dup
}

// metric sums the samples of /metrics whose name (with labels) starts with
// name.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.HasPrefix(k, name) {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum
}
