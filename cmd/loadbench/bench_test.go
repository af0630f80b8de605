package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/web"
	"github.com/tlsresume/tlsresume/proxy/wgsource"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// The benchmarks run tlsresume's proxy in-process, so that
// `go test -bench . -cpuprofile cpu.out ./cmd/loadbench` profiles it under
// the same load as loadbench's phases (the profile also holds the in-process
// clients and origin: look at stacks under proxy and goproxy). Each runs
// in four modes: "cli" as `tlsresume proxy --log FILE` is configured (console log
// line per connection, JSONL records, the live view following the record
// stream with no page open, system roots plus the origin's CA),
// and "quiet" with no logging and no records; "pool" is quiet with
// --upstream-reuse pool, and "wg" is quiet with the clients a WireGuard
// device in this process (tlsresume+wg), so that its profile holds both
// sides of the tunnel: the device's under wgpeer and the proxy's under
// proxy/wireguard (both run wireguard-go's device and gVisor's netstack).

func BenchmarkProxyHandshake(b *testing.B) {
	benchModes(b, func(b *testing.B, d *dialer) {
		parallel(b, func() op {
			return func(ctx context.Context) (sample, error) { return d.getFresh(ctx, nil, "/small") }
		})
	})
}

func BenchmarkProxyResumed(b *testing.B) {
	benchModes(b, func(b *testing.B, d *dialer) {
		parallel(b, func() op {
			cache := tls.NewLRUClientSessionCache(4)
			return func(ctx context.Context) (sample, error) { return d.getFresh(ctx, cache, "/small") }
		})
	})
}

func BenchmarkProxyBulk(b *testing.B) {
	benchModes(b, func(b *testing.B, d *dialer) {
		b.SetBytes(bulkSize)
		parallel(b, func() op {
			c := d.client([]string{"http/1.1"})
			b.Cleanup(c.CloseIdleConnections)
			return func(ctx context.Context) (sample, error) { return d.get(ctx, c, "/bulk") }
		})
	})
}

func BenchmarkProxyWarm(b *testing.B) {
	benchModes(b, func(b *testing.B, d *dialer) {
		c := d.client([]string{"http/1.1"})
		defer c.CloseIdleConnections()
		for b.Loop() {
			if _, err := d.get(context.Background(), c, "/small"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProxySequential is loadbench's sequential phase in-process: one
// client at a time, each request on a new connection with a full handshake;
// ns/op is one connection's latency from dial to the end of the body.
// "direct" is the baseline; the proxy runs quiet with --mirror overlap (the
// default: the client's handshake overlaps the upstream one) and wait.
func BenchmarkProxySequential(b *testing.B) {
	run := func(b *testing.B, d *dialer) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err := d.getFresh(ctx, nil, "/small")
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		org, err := startOrigin(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(org.close)
		run(b, &dialer{origin: org.addr, roots: org.roots})
	})
	for _, mode := range []string{proxy.MirrorOverlap, proxy.MirrorWait} {
		b.Run("mirror="+mode, func(b *testing.B) {
			run(b, startInProcess(b, false, false, func(c *proxy.Config) { c.Mirror = mode }))
		})
	}
}

// benchModes runs f against an in-process proxy configured like the CLI
// ("cli"), one that neither logs nor records ("quiet"), quiet with
// --upstream-reuse pool ("pool") and quiet behind its WireGuard server
// ("wg").
func benchModes(b *testing.B, f func(*testing.B, *dialer)) {
	for _, name := range []string{"cli", "quiet", "pool", "wg"} {
		b.Run(name, func(b *testing.B) {
			var d *dialer
			if name == "wg" {
				d = startInProcessWG(b)
			} else {
				d = startInProcess(b, name == "cli", name == "pool")
			}
			b.ReportAllocs()
			f(b, d)
		})
	}
}

// parallel runs 8 goroutines, as the new-connection phases run 8 workers,
// each with its own op from newOp.
func parallel(b *testing.B, newOp func() op) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((8 + procs - 1) / procs)
	b.RunParallel(func(pb *testing.PB) {
		o := newOp()
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err := o(ctx)
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// startInProcess starts an origin and a proxy.Server on loopback and
// returns a dialer through it.
func startInProcess(b testing.TB, cli, pool bool, mods ...func(*proxy.Config)) *dialer {
	b.Helper()
	_, d := startInProcessServer(b, cli, pool, mods...)
	return d
}

// startInProcessWG starts an origin, a quiet proxy.Server and its
// WireGuard source on loopback, as tlsresume proxy --wireguard
// --wireguard-local does, and returns a dialer whose clients are a device
// in this process (the tlsresume+wg contender).
func startInProcessWG(b testing.TB) *dialer {
	b.Helper()
	srv, d := startInProcessServer(b, false, false)
	st, err := wireguard.OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	src, err := wgsource.New(wgsource.Config{ListenAddr: "127.0.0.1:0", Store: st, Devices: []string{wgDevice},
		Local: true, DNSUpstream: "127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	if err := src.Start(context.Background(), srv); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	text, err := src.DeviceConfig(wgDevice)
	if err != nil {
		b.Fatal(err)
	}
	peer, err := wgpeer.Start(text, src.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { peer.Close() })
	d.proxy, d.peer = "", peer
	return d
}

// startInProcessServer is startInProcess, returning the proxy too.
func startInProcessServer(b testing.TB, cli, pool bool, mods ...func(*proxy.Config)) (*proxy.Server, *dialer) {
	b.Helper()
	dir := b.TempDir()
	org, err := startOrigin(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(org.close)
	ca, _, err := certs.Init(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	iss, err := certs.NewIssuer(ca, certs.IssuerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := proxy.Config{Issuer: iss, UpstreamRoots: org.roots}
	if pool {
		cfg.UpstreamReuse = proxy.ReusePool
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	var rl *proxy.RecordLog
	if cli {
		// As cmd/tlsresume/proxy.go builds it: zerolog's console writer on
		// stderr (here discarded), the JSONL record log, system roots + --upstream-ca.
		cfg.Log = zerolog.New(zerolog.ConsoleWriter{Out: io.Discard, TimeFormat: "15:04:05"}).
			Level(zerolog.InfoLevel).With().Timestamp().Logger()
		rl, err = proxy.OpenRecordLog(filepath.Join(dir, "conns.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pool.AddCert(org.caCert)
		cfg.UpstreamRoots = pool
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	written := make(chan struct{})
	if rl != nil {
		events := srv.Subscribe(context.Background(), 1<<16)
		go func() {
			rl.Follow(events, cfg.Log)
			rl.Close()
			close(written)
		}()
		// And the live view, on by default: its history and metrics follow
		// the stream (no page is open here).
		view := web.New(web.Config{})
		go view.Feed(context.Background(), srv.Subscribe(context.Background(), 1<<16))
	} else {
		close(written)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		<-written
	})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return srv, &dialer{proxy: ln.Addr().String(), origin: org.addr, roots: roots}
}

// BenchmarkHeldConnections reports the memory one connection held open
// through the proxy costs (B/held: the heap's live objects after a GC,
// stackB/held: goroutine stacks, and goroutines/held; client, proxy
// and origin all in this process, so a held connection's three TLS
// endpoints and its origin-side server are counted with the proxy's two).
// The direct mode is the same without the proxy, for the difference.
func BenchmarkHeldConnections(b *testing.B) {
	const n = 300
	for _, mode := range []string{"direct", "quiet"} {
		b.Run(mode, func(b *testing.B) {
			var d *dialer
			if mode == "direct" {
				dir := b.TempDir()
				org, err := startOrigin(dir)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(org.close)
				d = &dialer{origin: org.addr, roots: org.roots}
			} else {
				d = startInProcess(b, false, false)
			}
			for range b.N {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				goroutines := runtime.NumGoroutine()
				var conns []*tls.Conn
				for range n {
					ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
					tc, err := d.dial(ctx, nil, []string{"http/1.1"})
					cancel()
					if err != nil {
						b.Fatal(err)
					}
					conns = append(conns, tc)
				}
				time.Sleep(200 * time.Millisecond) // let every handshake's goroutines settle
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				// Signed: a collection may leave less in use than before.
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/held")
				b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/n, "stackB/held")
				b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/held")
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}
