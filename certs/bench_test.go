package certs

import (
	"crypto/tls"
	"strconv"
	"sync"
	"testing"
)

// BenchmarkMintNewHost measures a cache miss: one signature and one parse
// per new host. Goal: at most 1 ms.
func BenchmarkMintNewHost(b *testing.B) {
	_, iss := newTestIssuer(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := iss.Leaf("h" + strconv.Itoa(n) + ".example"); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkCachedLeaf measures a cache hit through the tls.Config callback,
// as a handshake sees it. Goal: at most 1 µs and no allocations.
func BenchmarkCachedLeaf(b *testing.B) {
	_, iss := newTestIssuer(b)
	get := iss.GetCertificate("")
	hello := &tls.ClientHelloInfo{ServerName: "cached.example"}
	if _, err := get(hello); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := get(hello); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCachedLeafParallel is the cached lookup under contention from
// every core.
func BenchmarkCachedLeafParallel(b *testing.B) {
	_, iss := newTestIssuer(b)
	hosts := make([]string, 64)
	for i := range hosts {
		hosts[i] = "p" + strconv.Itoa(i) + ".example"
		if _, err := iss.Leaf(hosts[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := iss.Leaf(hosts[i%len(hosts)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// Benchmark1000HostsConcurrently: one op is 1,000 goroutines each asking
// for a host no one asked for before, all at once.
func Benchmark1000HostsConcurrently(b *testing.B) {
	_, iss := newTestIssuer(b)
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		var wg sync.WaitGroup
		prefix := "r" + strconv.Itoa(round) + "-"
		for h := range 1000 {
			wg.Go(func() {
				if _, err := iss.Leaf(prefix + strconv.Itoa(h) + ".example"); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		round++
	}
}
