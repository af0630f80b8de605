package web_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
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
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	view := web.New(web.Config{History: n})
	for i := range n {
		r := deepCopy(tb, real[i%len(real)])
		r.ID = fmt.Sprintf("c%d", i+1)
		view.Add(r)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(view)
	return float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
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
