package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/web"
)

var updateRecords = flag.Bool("update-records", false, "rewrite testdata/records.jsonl from real clients through a real proxy")

// recordsFile holds records of real clients through a real proxy
// (TestPackRealRecords writes it with -update-records): the fuzz targets'
// seeds and the benchmarks' records.
const recordsFile = "testdata/records.jsonl"

// TestPackRealRecords: every record of real clients through a real proxy —
// openssl (TLS 1.3, new and resumed; TLS 1.2 with a ticket), curl (one that
// trusts the proxy's CA and one that does not, whose handshake fails),
// Chromium loading a page and its sub-resources — and every record of the
// JA4 corpus's captures comes out of the history's packing as it went in:
// the same JSON, the first time (its values inline), the second (the
// recurring ones from the vocabulary), and unpacked into a record that
// held another before.
func TestPackRealRecords(t *testing.T) {
	live := liveRecords(t)
	if *updateRecords {
		writeRecords(t, recordsFile, live)
	}
	all := append(live, readRecords(t, recordsFile)...)
	all = append(all, captureRecords(t)...)
	p := web.NewPacker()
	var scratch inspect.ConnRecord
	for round := range 2 {
		size := 0
		for _, r := range all {
			size += checkPack(t, p, &scratch, r)
		}
		t.Logf("round %d: %d records, %d bytes packed on average", round+1, len(all), size/len(all))
	}
}

// checkPack packs r and checks that it unpacks to the same JSON, new and
// into scratch; it returns the packed size.
func checkPack(t testing.TB, p *web.Packer, scratch, r *inspect.ConnRecord) int {
	t.Helper()
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	packed := p.Pack(r)
	got, err := p.Unpack(packed)
	if err != nil {
		t.Fatalf("%s: %v", r.ID, err)
	}
	sameJSON(t, r.ID+" unpacked", got, want)
	if err := p.UnpackInto(packed, scratch); err != nil {
		t.Fatalf("%s into a used record: %v", r.ID, err)
	}
	sameJSON(t, r.ID+" unpacked into a used record", scratch, want)
	return len(packed)
}

func sameJSON(t testing.TB, what string, got *inspect.ConnRecord, want []byte) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(b, want) {
		i := 0
		for i < len(b) && i < len(want) && b[i] == want[i] {
			i++
		}
		t.Fatalf("%s: JSON differs at byte %d:\n got …%s\nwant …%s", what, i, tail(b[i:]), tail(want[i:]))
	}
}

func tail(b []byte) string { return string(b[:min(len(b), 120)]) }

// liveRecords runs real clients through a real proxy and returns the
// records the proxy closed.
func liveRecords(t *testing.T) []*inspect.ConnRecord {
	openssl := tlstest.Need(t, "openssl")
	curl := tlstest.Need(t, "curl")
	chromium := tlstest.Need(t, "chromium")
	l := startLive(t, nil)
	var recs []*inspect.ConnRecord
	sess := filepath.Join(l.dir, "sess.pem")
	for i := range 2 {
		l.openssl(openssl, sess, i == 0)
		recs = append(recs, l.next())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sess12 := filepath.Join(l.dir, "sess12.pem")
	for i, flag := range []string{"-sess_out", "-sess_in"} {
		req := "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
		out, _, err := tlstest.Run(ctx, req, openssl, "s_client", "-proxy", l.proxy, "-connect", l.origin, "-servername", "localhost",
			"-CAfile", l.ca.CertFile(), "-tls1_2", "-ign_eof", flag, sess12)
		if err != nil {
			t.Fatalf("s_client -tls1_2, run %d: %v\n%s", i+1, err, tlstest.Tail(out, 500))
		}
		recs = append(recs, l.next())
	}
	l.curl(curl)
	recs = append(recs, l.next())
	// curl that does not trust the proxy's CA: its handshake fails.
	tlstest.Run(ctx, "", curl, "-sS", "--proxy", "http://"+l.proxy, "--tlsv1.3",
		"--resolve", "localhost:"+portOf(l.origin)+":127.0.0.1", "https://localhost:"+portOf(l.origin)+"/")
	recs = append(recs, l.next())
	dom, stderr, err := tlstest.DumpDOM(ctx, chromium, tlstest.ChromiumPage{
		URL: "https://localhost:" + portOf(l.origin) + "/", Dir: l.dir, Logf: t.Logf,
		Flags: []string{"--proxy-server=http://" + l.proxy, "--ignore-certificate-errors",
			// Chromium bypasses a proxy for loopback on its own (since M72);
			// "<-loopback>" takes that rule out (net/docs/proxy.md).
			"--proxy-bypass-list=<-loopback>"},
	})
	if err != nil || !strings.Contains(dom, `id="done"`) {
		t.Fatalf("chromium through the proxy: %v %s %s", err, tlstest.Tail(dom, 300), tlstest.Tail(stderr, 600))
	}
	n := len(recs)
	for more := true; more; {
		select {
		case r := <-l.records:
			recs = append(recs, r)
		case <-time.After(2 * time.Second): // its connections have closed by then
			more = false
		}
	}
	if len(recs)-n < 2 {
		t.Fatalf("chromium made %d connections through the proxy, want its page's and its sub-resources'", len(recs)-n)
	}
	return recs
}

// captureRecords reads the JA4 corpus's captures beside the repository
// into records, as `tlsresume web` does.
func captureRecords(t testing.TB) []*inspect.ConnRecord {
	dir := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	files, _ := filepath.Glob(filepath.Join(dir, "captures", "*"))
	apple, _ := filepath.Glob(filepath.Join(dir, "apple", "captures", "*"))
	files = append(files, apple...)
	if len(files) == 0 {
		t.Skipf("JA4 corpus not found beside the repository at %s; CI has it at ../shared/corpora", dir)
	}
	var recs []*inspect.ConnRecord
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		inspect.ReadCapture(f, func(r *inspect.Record) error { // a capture cut short gives what it has
			recs = append(recs, &inspect.ConnRecord{Record: *r})
			return nil
		})
		f.Close()
	}
	if len(recs) < 100 {
		t.Fatalf("%d records from %d captures: the corpus has some 200 hellos", len(recs), len(files))
	}
	return recs
}

func readRecords(t testing.TB, path string) []*inspect.ConnRecord {
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

func writeRecords(t *testing.T, path string, recs []*inspect.ConnRecord) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	enc := json.NewEncoder(w)
	for _, r := range recs {
		enc.Encode(r)
	}
	w.Flush()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzPack: a record (as JSON) packs and unpacks to the same JSON, through
// one codec whose vocabulary grows from record to record. Seeded with real
// proxy records and the corpus's captures.
func FuzzPack(f *testing.F) {
	for _, r := range append(readRecords(f, recordsFile), captureRecords(f)...) {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	p := web.NewPacker()
	var scratch inspect.ConnRecord
	f.Fuzz(func(t *testing.T, data []byte) {
		var r inspect.ConnRecord
		if json.Unmarshal(data, &r) != nil {
			return
		}
		if _, err := json.Marshal(&r); err != nil {
			return // a time JSON cannot write: not a record
		}
		checkPack(t, p, &scratch, &r)
		checkPack(t, p, &scratch, &r) // its values are in the vocabulary now
	})
}

// FuzzUnpack: any bytes unpack without a panic, to an error or a record
// that packs and unpacks to itself. Seeded with packed real records.
func FuzzUnpack(f *testing.F) {
	p := web.NewPacker()
	for _, r := range readRecords(f, recordsFile) {
		p.Pack(r)
		f.Add([]byte(p.Pack(r)))
	}
	var scratch inspect.ConnRecord
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := p.Unpack(string(data))
		if err != nil {
			return
		}
		if _, err := json.Marshal(r); err != nil {
			return
		}
		checkPack(t, p, &scratch, r)
	})
}

// BenchmarkSummary: GET /api/summary over a history of 50,000 records
// (the real records of testdata/records.jsonl, each again under ids of
// its own), each unpacked in turn.
func BenchmarkSummary(b *testing.B) {
	const n = 50_000
	real := readRecords(b, recordsFile)
	view := web.New(web.Config{History: n})
	for i := range n {
		r := *real[i%len(real)]
		r.ID = fmt.Sprintf("c%d", i+1)
		view.Add(&r)
	}
	srv := httptest.NewServer(view.Handler())
	defer srv.Close()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Get(srv.URL + "/api/summary")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"conns"`) {
			b.Fatalf("%d %s", resp.StatusCode, tail(body))
		}
	}
}
