package upstream

import (
	"crypto/tls"
	"strconv"
	"testing"
)

// BenchmarkGetHit is the lookup a resuming handshake makes.
func BenchmarkGetHit(b *testing.B) {
	cs, _ := realSession(b, tls.VersionTLS13)
	c := newTestCache(b, CacheConfig{})
	v := c.For("bench", testSNI, "127.0.0.1:443", "")
	v.Put("", cs)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := v.Get(""); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkPut stores sessions for twice as many servers as the cache
// holds, so most Puts also evict.
func BenchmarkPut(b *testing.B) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		b.Run(tls.VersionName(version), func(b *testing.B) {
			cs, _ := realSession(b, version)
			c := newTestCache(b, CacheConfig{Size: 512})
			views := make([]*View, 1024)
			for i := range views {
				views[i] = c.For("bench", testSNI, "127.0.0.1:"+strconv.Itoa(i), "")
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				views[i%len(views)].Put("", cs)
				i++
			}
		})
	}
}
