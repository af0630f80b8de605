package web_test

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/web"
)

// BenchmarkHistoryMemory reports what the view keeps per record (B/record,
// heap in use after a GC), for records of real openssl connections through
// a real proxy, as they arrive: each one a record of its own, with its own
// hello, as the proxy publishes them.
func BenchmarkHistoryMemory(b *testing.B) {
	real := opensslRecords(b)
	for range b.N {
		b.ReportMetric(heapPerRecord(b, real, 20_000), "B/record")
	}
}

// TestHistoryMemory: the view keeps a record in at most 500 bytes of heap
// (issue 19: the proxy's RSS with its live view on), where the records'
// Go structs took some 2.4 KB: it keeps them packed.
func TestHistoryMemory(t *testing.T) {
	const most = 500
	if got := heapPerRecord(t, opensslRecords(t), 20_000); got > most {
		t.Errorf("the view keeps %.0f bytes of heap per record, want at most %d", got, most)
	} else {
		t.Logf("%.0f bytes of heap per record", got)
	}
}

// opensslRecords are the records of two real openssl connections through
// a real proxy, the second resumed.
func opensslRecords(tb testing.TB) []*inspect.ConnRecord {
	openssl := tlstest.Need(tb, "openssl")
	l := startLive(tb, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var real []*inspect.ConnRecord
	for i := range 2 {
		l.openssl(openssl, sess, i == 0)
		real = append(real, l.next())
	}
	return real
}

// heapPerRecord adds n records to a new view, copies of real under ids of
// their own, and returns the heap in use that the view grew by, per record.
func heapPerRecord(tb testing.TB, real []*inspect.ConnRecord, n int) float64 {
	return heapPerRecordOf(n, func(i int) *inspect.ConnRecord {
		r := deepCopy(tb, real[i%len(real)])
		r.ID = fmt.Sprintf("c%d", i+1)
		return r
	})
}

// heapPerRecordOf adds the n records next makes to a new view and returns
// the heap in use that the view grew by, per record.
func heapPerRecordOf(n int, next func(i int) *inspect.ConnRecord) float64 {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	view := web.New(web.Config{History: n})
	for i := range n {
		view.Add(next(i))
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(view)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
}

// BenchmarkHistoryMemoryChromium is BenchmarkHistoryMemory for Chromium's
// records (testdata/records.jsonl), each with its extensions in an order
// of its own, as Chromium shuffles them on every connection, and so a JA3
// and a JA3 hash of its own (made here as JA3 is defined: the extension
// list without GREASE, joined by "-"), and a random of its own.
func BenchmarkHistoryMemoryChromium(b *testing.B) {
	var chromium []*inspect.ConnRecord
	for _, r := range readRecords(b, recordsFile) {
		if strings.HasPrefix(r.UserAgent, "Mozilla/") && r.ClientHello != nil {
			chromium = append(chromium, r)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range b.N {
		b.ReportMetric(heapPerRecordOf(20_000, func(i int) *inspect.ConnRecord {
			r := deepCopy(b, chromium[i%len(chromium)])
			r.ID = fmt.Sprintf("c%d", i+1)
			ch := r.ClientHello
			rng.Shuffle(len(ch.Extensions), func(i, j int) { ch.Extensions[i], ch.Extensions[j] = ch.Extensions[j], ch.Extensions[i] })
			var exts []string
			for _, e := range ch.Extensions {
				if !inspect.IsGREASE(uint16(e)) {
					exts = append(exts, strconv.Itoa(e))
				}
			}
			parts := strings.Split(ch.JA3, ",")
			parts[2] = strings.Join(exts, "-")
			ch.JA3 = strings.Join(parts, ",")
			sum := md5.Sum([]byte(ch.JA3))
			ch.JA3Hash = hex.EncodeToString(sum[:])
			ch.Random = fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())
			return r
		}), "B/record")
	}
}

// deepCopy is r as the proxy publishes each record: allocated on its own.
func deepCopy(tb testing.TB, r *inspect.ConnRecord) *inspect.ConnRecord {
	b, err := json.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	var out inspect.ConnRecord
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return &out
}
