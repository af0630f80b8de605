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
	openssl := tlstest.Need(b, "openssl")
	l := startLive(b, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var real []*inspect.ConnRecord
	for i := range 2 {
		l.openssl(openssl, sess, i == 0)
		real = append(real, l.next())
	}
	const n = 20_000
	for range b.N {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		view := web.New(web.Config{History: n})
		for i := range n {
			r := deepCopy(b, real[i%2])
			r.ID = fmt.Sprintf("c%d", i+1)
			view.Add(r)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "B/record")
		runtime.KeepAlive(view)
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
