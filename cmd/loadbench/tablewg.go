package main

import (
	"fmt"
	"math"
)

// wireguard is the tlsresume+wg contender against tlsresume, the same
// proxy reached by CONNECT: issue 21's goals, and what the user-space
// stack costs on each side of the tunnel. Its values are tlsresume+wg's
// only.
//
// loadbench's own CPU time (BenchCPU) is its clients' and the origin's;
// the origin's work and the clients' TLS are the same whichever way the
// clients reach the proxy, so tlsresume+wg's BenchCPU above tlsresume's
// is what the device's side of the tunnel costs (wireguard-go and gVisor's
// netstack in this process), which a phone pays on its own CPU. The
// proxy's CPU time above tlsresume's is what the tunnel costs the proxy
// (its WireGuard and netstack), which the laptop pays.
func (m measures) wireguard() []metricSpec {
	vs := func(key string) func(*contenderReport) float64 {
		return m.wgOnly(func(wg, connect *contenderReport) float64 { return wg.Medians[key] / connect.Medians[key] })
	}
	above := func(key string) func(*contenderReport) float64 {
		return m.wgOnly(func(wg, connect *contenderReport) float64 { return wg.Medians[key] - connect.Medians[key] })
	}
	// cpuBound is CONNECT's CPU per unit, all processes, over the
	// tunnel's without the device's side (the proxy's, and loadbench's
	// as for CONNECT): the throughput ratio if the CPUs were the only
	// limit and the device's netstack ran elsewhere, as a phone's does.
	cpuBound := func(proxyKey, benchKey string) func(*contenderReport) float64 {
		return m.wgOnly(func(wg, connect *contenderReport) float64 {
			c := connect.Medians[proxyKey] + connect.Medians[benchKey]
			return c / (wg.Medians[proxyKey] + connect.Medians[benchKey])
		})
	}
	return []metricSpec{
		{"WireGuard vs CONNECT: handshakes/s, full", "wg_full_ratio", "%.2f×", false, vs("handshakes_full_per_s"), wgAtLeast(0.7)},
		{"  handshakes/s, resuming", "wg_resumed_ratio", "%.2f×", false, vs("handshakes_resumed_per_s"), wgAtLeast(0.7)},
		{"  bulk MB/s, HTTP/1.1", "wg_bulk_h1_ratio", "%.2f×", false, vs("bulk_h1_mb_per_s"), wgAtLeast(0.6)},
		{"  bulk MB/s, h2", "wg_bulk_h2_ratio", "%.2f×", false, vs("bulk_h2_mb_per_s"), wgAtLeast(0.6)},
		{"  proxy KB per held connection", "wg_held_kb_ratio", "%.2f×", false, vs("held_kb_per_conn"),
			&goal{text: "≤ 1.5× (tlsresume+wg)", ok: func(v, _ float64) bool { return v <= 1.5 }, on: nameTLSResumeWG}},
		{"  proxy CPU ms per new connection (full)", "wg_proxy_cpu_conn_ratio", "%.2f×", false, vs("proxy_cpu_ms_per_conn"), nil},
		{"tunnel's cost, proxy: CPU ms per new connection (full)", "wg_proxy_cpu_ms_per_conn", "%.2f", false, above("proxy_cpu_ms_per_conn"), nil},
		{"  CPU ms per new connection (resuming)", "wg_proxy_cpu_ms_per_conn_resumed", "%.2f", false, above("proxy_cpu_ms_per_conn_resumed"), nil},
		{"  CPU ms per MB (bulk HTTP/1.1)", "wg_proxy_cpu_ms_per_mb", "%.2f", false, above("proxy_cpu_ms_per_mb"), nil},
		{"tunnel's cost, device (loadbench): CPU ms per new connection", "wg_device_cpu_ms_per_conn", "%.2f", false, above("bench_cpu_ms_per_conn"), nil},
		{"  CPU ms per MB (bulk HTTP/1.1)", "wg_device_cpu_ms_per_mb", "%.2f", false, above("bench_cpu_ms_per_mb"), nil},
		{"  CPU-bound handshakes/s vs CONNECT, device's side elsewhere (estimate)", "wg_cpu_bound_handshakes_ratio", "%.2f×", false,
			cpuBound("proxy_cpu_ms_per_conn", "bench_cpu_ms_per_conn"), nil},
		{"  CPU-bound bulk MB/s vs CONNECT, device's side elsewhere (estimate)", "wg_cpu_bound_bulk_ratio", "%.2f×", false,
			cpuBound("proxy_cpu_ms_per_mb", "bench_cpu_ms_per_mb"), nil},
	}
}

// wgOnly is f of tlsresume+wg and tlsresume, for tlsresume+wg's column;
// NaN in every other column and without both contenders.
func (m measures) wgOnly(f func(wg, connect *contenderReport) float64) func(*contenderReport) float64 {
	return func(c *contenderReport) float64 {
		connect := m.by[nameTLSResume]
		if c.Name != nameTLSResumeWG || connect == nil {
			return math.NaN()
		}
		return f(c, connect)
	}
}

func wgAtLeast(x float64) *goal {
	return &goal{text: fmt.Sprintf("≥ %g× (tlsresume+wg)", x), ok: func(v, _ float64) bool { return v >= x }, on: nameTLSResumeWG}
}
