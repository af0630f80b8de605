package main

import (
	"context"
	"crypto/tls"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// settings bound the load. Every phase stops at Phase or at its request
// budget, whichever comes first.
type settings struct {
	Reps         int           `json:"reps"`
	Phase        time.Duration `json:"phase_ns"`
	MaxRequests  int64         `json:"max_requests"`  // per throughput phase
	SeqRequests  int64         `json:"seq_requests"`  // sequential new-connection latency phase
	WarmRequests int64         `json:"warm_requests"` // warm-connection latency phase
	Workers      int           `json:"workers"`       // new-connection throughput phases
	Held         int           `json:"held"`          // connections held open in the held phase
	BulkWorkers  int           `json:"bulk_workers"`
	Settle       time.Duration `json:"settle_ns"` // pause after each phase, before the origin's counters are read
	// Only, when not empty, names the phases to run (-phases); the
	// table shows the others' rows empty.
	Only []string `json:"only_phases,omitempty"`
}

// runs reports whether the phase named is one s runs.
func (s settings) runs(name string) bool {
	return len(s.Only) == 0 || slices.Contains(s.Only, name)
}

// warmUp requests open and warm a keep-alive connection before the warm
// latency phase starts timing.
const warmUp = 20

// phaseResult is what one phase measured for one contender in one rep.
type phaseResult struct {
	Requests    int64        `json:"requests"`
	Errors      int64        `json:"errors"`
	Bytes       int64        `json:"bytes"`
	Resumed     int64        `json:"client_resumed"` // requests whose client handshake resumed
	Seconds     float64      `json:"seconds"`
	ProxyCPU    float64      `json:"proxy_cpu_seconds,omitempty"` // the proxy subprocess's CPU time during the phase
	BenchCPU    float64      `json:"bench_cpu_seconds"`           // loadbench's own (clients and origin) CPU time during the phase
	Slot        int          `json:"slot"`                        // its turn among the contenders in this phase of this rep, 0 first
	P50MS       float64      `json:"p50_ms,omitempty"`
	P99MS       float64      `json:"p99_ms,omitempty"`
	HeldRSSMB   float64      `json:"held_rss_mb,omitempty"`     // held phase: the proxy's RSS with every connection held open
	PreHeldMB   float64      `json:"pre_held_rss_mb,omitempty"` // held phase: the proxy's RSS before the first was opened
	Held        int          `json:"held,omitempty"`            // held phase: connections held open
	MaxRSSMB    float64      `json:"max_rss_mb,omitempty"`      // the proxy's RSS, sampled every 50 ms during the phase: the highest
	Origin      originCounts `json:"origin"`                    // the origin's handshakes during the phase
	FirstErrors []string     `json:"first_errors,omitempty"`
}

func (p phaseResult) perSecond() float64 { return float64(p.Requests) / p.Seconds }
func (p phaseResult) mbPerSecond() float64 {
	return float64(p.Bytes) / 1e6 / p.Seconds
}

// phase is one kind of load.
type phase struct {
	name string
	run  func(ctx context.Context, d *dialer, s settings) phaseResult
}

var phases = []phase{
	{"handshakes_full", func(ctx context.Context, d *dialer, s settings) phaseResult { return newConns(ctx, d, s, false) }},
	{"handshakes_resumed", func(ctx context.Context, d *dialer, s settings) phaseResult { return newConns(ctx, d, s, true) }},
	{"bulk_h1", func(ctx context.Context, d *dialer, s settings) phaseResult { return bulk(ctx, d, s, "http/1.1") }},
	{"bulk_h2", func(ctx context.Context, d *dialer, s settings) phaseResult { return bulk(ctx, d, s, "h2") }},
	{"sequential", sequential},
	{"warm", warm},
	{"held", held},
}

// op is one request of a worker.
type op func(ctx context.Context) (sample, error)

// newConns: s.Workers workers, each request on a new TCP+TLS connection.
// With resume, each worker keeps its own session cache, so all but its
// first handshake can resume; without, every handshake is full.
func newConns(ctx context.Context, d *dialer, s settings, resume bool) phaseResult {
	return drive(ctx, s, s.Workers, s.MaxRequests, false, func() op {
		var cache tls.ClientSessionCache
		if resume {
			cache = tls.NewLRUClientSessionCache(4)
		}
		return func(ctx context.Context) (sample, error) { return d.getFresh(ctx, cache, "/small") }
	})
}

// bulk: s.BulkWorkers workers fetch 1 MiB responses, each over its own
// keep-alive connection speaking alpn.
func bulk(ctx context.Context, d *dialer, s settings, alpn string) phaseResult {
	var clients []*http.Client
	res := drive(ctx, s, s.BulkWorkers, s.MaxRequests, false, func() op {
		c := d.client([]string{alpn})
		clients = append(clients, c)
		return func(ctx context.Context) (sample, error) { return d.get(ctx, c, "/bulk") }
	})
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	return res
}

// sequential: one worker, each request on a new connection with a full
// handshake, timed from dial to the end of the body.
func sequential(ctx context.Context, d *dialer, s settings) phaseResult {
	return drive(ctx, s, 1, s.SeqRequests, true, func() op {
		return func(ctx context.Context) (sample, error) { return d.getFresh(ctx, nil, "/small") }
	})
}

// warm: one worker, small requests one after another on one keep-alive
// HTTP/1.1 connection opened and warmed beforehand.
func warm(ctx context.Context, d *dialer, s settings) phaseResult {
	c := d.client([]string{"http/1.1"})
	defer c.CloseIdleConnections()
	var pre phaseResult
	for range warmUp {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := d.get(rctx, c, "/small")
		cancel()
		if err != nil {
			pre.addError(err)
		}
	}
	res := drive(ctx, s, 1, s.WarmRequests, true, func() op {
		return func(ctx context.Context) (sample, error) { return d.get(ctx, c, "/small") }
	})
	res.Errors += pre.Errors
	res.FirstErrors = append(pre.FirstErrors, res.FirstErrors...)
	return res
}

// held: s.Held connections are opened (CONNECT and TLS done, then idle,
// as a phone's apps leave them), and while they are open one worker times
// new connections, as the sequential phase does; the proxy's RSS is read
// with all of them open. The held ones are then closed.
func held(ctx context.Context, d *dialer, s settings) phaseResult {
	if s.Held <= 0 {
		return phaseResult{}
	}
	var (
		mu    sync.Mutex
		conns []*tls.Conn
		pre   phaseResult
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	if d.rss != nil {
		pre.PreHeldMB = d.rss()
	}
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(s.Held) && ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				tc, err := d.dial(rctx, nil, []string{"http/1.1"})
				cancel()
				mu.Lock()
				if err != nil {
					pre.addError(err)
				} else {
					conns = append(conns, tc)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	res := sequential(ctx, d, s)
	if d.rss != nil {
		res.HeldRSSMB = d.rss()
	}
	res.PreHeldMB, res.Held = pre.PreHeldMB, len(conns)
	res.Errors += pre.Errors
	res.FirstErrors = append(pre.FirstErrors, res.FirstErrors...)
	return res
}

// drive runs workers, each looping over its own op until the phase's time
// is up or budget requests have been started, and sums what they did.
// keepLat adds the p50 and p99 of the successful requests' durations.
func drive(ctx context.Context, s settings, workers int, budget int64, keepLat bool, newOp func() op) phaseResult {
	start := time.Now()
	end := start.Add(s.Phase)
	var (
		started atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		total   phaseResult
		lats    []time.Duration
	)
	for range workers {
		o := newOp()
		wg.Go(func() {
			var r phaseResult
			var lat []time.Duration
			for ctx.Err() == nil && time.Now().Before(end) && started.Add(1) <= budget {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				t0 := time.Now()
				smp, err := o(rctx)
				took := time.Since(t0)
				cancel()
				if err != nil {
					r.addError(err)
					time.Sleep(5 * time.Millisecond) // a failing contender must not spin
					continue
				}
				r.Requests++
				r.Bytes += smp.bytes
				if smp.resumed {
					r.Resumed++
				}
				if keepLat {
					lat = append(lat, took)
				}
			}
			mu.Lock()
			total.add(r)
			lats = append(lats, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	total.Seconds = time.Since(start).Seconds()
	if keepLat && len(lats) > 0 {
		slices.Sort(lats)
		total.P50MS = durMS(percentile(lats, 0.50))
		total.P99MS = durMS(percentile(lats, 0.99))
	}
	return total
}

func (p *phaseResult) addError(err error) {
	p.Errors++
	if len(p.FirstErrors) < 3 {
		p.FirstErrors = append(p.FirstErrors, err.Error())
	}
}

func (p *phaseResult) add(q phaseResult) {
	p.Requests += q.Requests
	p.Errors += q.Errors
	p.Bytes += q.Bytes
	p.Resumed += q.Resumed
	for _, e := range q.FirstErrors {
		if len(p.FirstErrors) < 3 {
			p.FirstErrors = append(p.FirstErrors, e)
		}
	}
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func durMS(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
