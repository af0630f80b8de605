package main

import (
	"fmt"
	"math"
)

// buildTable is the table's rows: each metric's value per contender, its
// ratio to direct, and whether tlsresume meets the goal.
func buildTable(crs []contenderReport) []tableRow {
	m := measures{by: map[string]*contenderReport{}}
	for i := range crs {
		if crs[i].Skipped == "" {
			m.by[crs[i].Name] = &crs[i]
		}
	}
	var rows []tableRow
	for _, specs := range [][]metricSpec{m.throughput(), m.latency(), m.upstream(), m.memory(), m.cpu(), m.wireguard()} {
		for _, s := range specs {
			rows = append(rows, s.row(m.by))
		}
	}
	return rows
}

// metricSpec is one row: how to read it from a contender's report, how to
// print it, whether it is compared to direct, and the goal it must meet.
type metricSpec struct {
	label, key, format string
	ratio              bool
	val                func(*contenderReport) float64
	goal               *goal
}

func (s metricSpec) row(by map[string]*contenderReport) tableRow {
	row := tableRow{Metric: s.label, Key: s.key, Values: map[string]float64{}, format: s.format}
	for name, c := range by {
		row.Values[name] = s.val(c)
	}
	if d, ok := row.Values[nameDirect]; s.ratio && ok {
		row.Ratios = map[string]float64{}
		for name, v := range row.Values {
			if name != nameDirect {
				row.Ratios[name] = v / d
			}
		}
	}
	if s.goal != nil {
		row.Goal = s.goal.text
		on := s.goal.on
		if on == "" {
			on = nameTLSResume
		}
		if v, ok := row.Values[on]; ok && !math.IsNaN(v) && (!s.ratio || row.Ratios != nil) {
			met := s.goal.ok(v, row.Ratios[on])
			row.Met = &met
		}
	}
	return row
}

// measures reads the contenders' reports for the specs.
type measures struct{ by map[string]*contenderReport }

func (m measures) med(key string) func(*contenderReport) float64 {
	return func(c *contenderReport) float64 { return c.Medians[key] }
}

// direct is direct's median of key, NaN without the direct contender.
func (m measures) direct(key string) float64 {
	if d := m.by[nameDirect]; d != nil {
		return d.Medians[key]
	}
	return math.NaN()
}

func proxyOnly(f func(*contenderReport) float64) func(*contenderReport) float64 {
	return func(c *contenderReport) float64 {
		if c.Name == nameDirect {
			return math.NaN()
		}
		return f(c)
	}
}

// held is a held-phase median, NaN when the phase did not run (-held 0).
func (m measures) held(key string) func(*contenderReport) float64 {
	return func(c *contenderReport) float64 {
		if c.Medians[key] == 0 {
			return math.NaN()
		}
		return c.Medians[key]
	}
}

// cpuBound is direct's CPU cost per unit over the contender's, all
// processes counted: the throughput ratio if the CPUs were the only limit
// and nothing else ran on them, robust to a busy machine.
func (m measures) cpuBound(key string) func(*contenderReport) float64 {
	return proxyOnly(func(c *contenderReport) float64 { return m.direct(key) / c.Medians[key] })
}

func atLeast(x float64) *goal {
	return &goal{text: fmt.Sprintf("≥ %g× direct", x), ok: func(_, r float64) bool { return r >= x }}
}

func atMost(text string, x float64) *goal {
	return &goal{text: text, ok: func(v, _ float64) bool { return v <= x }}
}

// The goals are issue 12's and 19's. A proxy that makes one upstream
// handshake per client handshake does both ends' TLS work on the same
// cores: about 0.5× direct is the limit for handshakes and bulk
// (printLimit).

func (m measures) throughput() []metricSpec {
	return []metricSpec{
		{"new-conn handshakes/s, full, 8 workers", "handshakes_full_per_s", "%.0f", true, m.med("handshakes_full_per_s"), atLeast(0.48)},
		{"new-conn handshakes/s, resuming, 8 workers", "handshakes_resumed_per_s", "%.0f", true, m.med("handshakes_resumed_per_s"), atLeast(0.48)},
		{"  pool mode: full handshakes/s vs direct", "pool_full_ratio", "%.2f×", false,
			func(c *contenderReport) float64 {
				if c.Name != nameTLSResumePool {
					return math.NaN()
				}
				return c.Medians["handshakes_full_per_s"] / m.direct("handshakes_full_per_s")
			}, &goal{text: "≥ 0.8× (tlsresume+pool)", ok: func(v, _ float64) bool { return v >= 0.8 }, on: nameTLSResumePool}},
		{"  resuming vs full, same contender", "resumed_over_full", "%.2f×", false,
			func(c *contenderReport) float64 {
				return c.Medians["handshakes_resumed_per_s"] / c.Medians["handshakes_full_per_s"]
			}, &goal{text: "> 1× (resuming is cheaper)", ok: func(v, _ float64) bool { return v > 1 }}},
		{"  client handshakes resumed %", "client_resumed_pct", "%.1f", false, m.med("client_resumed_pct"), nil},
		{"bulk MB/s, 1 MiB, 4 workers, HTTP/1.1", "bulk_h1_mb_per_s", "%.0f", true, m.med("bulk_h1_mb_per_s"), atLeast(0.47)},
		{"bulk MB/s, 1 MiB, 4 workers, h2", "bulk_h2_mb_per_s", "%.0f", true, m.med("bulk_h2_mb_per_s"), atLeast(0.47)},
	}
}

func (m measures) latency() []metricSpec {
	return []metricSpec{
		{"sequential new-conn p50 ms", "sequential_p50_ms", "%.2f", true, m.med("sequential_p50_ms"),
			&goal{text: "≤ 2.0× direct", ok: func(_, r float64) bool { return r <= 2.0 }}},
		{"sequential new-conn p99 ms", "sequential_p99_ms", "%.2f", true, m.med("sequential_p99_ms"), nil},
		{"warm keep-alive p50 ms", "warm_p50_ms", "%.3f", true, m.med("warm_p50_ms"), nil},
		{"warm added p50 ms vs direct", "warm_added_p50_ms", "%.3f", false,
			proxyOnly(func(c *contenderReport) float64 { return c.Medians["warm_p50_ms"] - m.direct("warm_p50_ms") }),
			atMost("≤ 0.3 ms", 0.3)},
	}
}

func (m measures) upstream() []metricSpec {
	atLeast99 := &goal{text: "≥ 99 %", ok: func(v, _ float64) bool { return v >= 99 }}
	return []metricSpec{
		{"upstream resumed % (tlsresume --log)", "upstream_resumed_pct_log", "%.2f", false,
			proxyOnly(func(c *contenderReport) float64 {
				if c.RecordLog == nil {
					return math.NaN()
				}
				return pct(int64(c.RecordLog.UpstreamResumed), int64(c.RecordLog.UpstreamOK))
			}), atLeast99},
		{"upstream resumed % (origin's count)", "upstream_resumed_pct_origin", "%.2f", false,
			proxyOnly(func(c *contenderReport) float64 {
				if c.Name == nameTunnel {
					return math.NaN() // the origin sees the clients' own handshakes
				}
				return pct(c.Origin.Resumed, c.Origin.Handshakes)
			}), atLeast99},
	}
}

// memory is the held phase (1,000 connections held open, new ones timed
// meanwhile) and the proxy's memory.
func (m measures) memory() []metricSpec {
	return []metricSpec{
		{"new-conn p50 ms, connections held open", "held_p50_ms", "%.2f", true, m.held("held_p50_ms"), nil},
		{"new-conn p99 ms, connections held open", "held_p99_ms", "%.2f", true, m.held("held_p99_ms"), nil},
		{"proxy RSS MB, connections held open", "held_rss_mb", "%.1f", false,
			proxyOnly(m.held("held_rss_mb")), atMost("≤ 120 MB (1,000 held)", 120)},
		{"proxy KB per held connection (RSS above the phase's start)", "held_kb_per_conn", "%.1f", false,
			proxyOnly(m.held("held_kb_per_conn")), nil},
		{"proxy RSS MB, highest in the other phases", "throughput_rss_mb", "%.1f", false,
			proxyOnly(m.med("throughput_rss_mb")), atMost("≤ 40 MB", 40)},
		{"peak RSS MB (VmHWM, whole run)", "peak_rss_mb", "%.1f", false,
			proxyOnly(func(c *contenderReport) float64 { return c.Process.PeakRSSMB }), nil},
	}
}

func (m measures) cpu() []metricSpec {
	return []metricSpec{
		{"proxy CPU ms per new connection (full)", "proxy_cpu_ms_per_conn", "%.2f", false, m.med("proxy_cpu_ms_per_conn"),
			atMost("≤ 0.8 ms", 0.8)},
		{"  vs direct's client and origin together", "proxy_cpu_over_direct_all", "%.2f×", false,
			proxyOnly(func(c *contenderReport) float64 {
				return c.Medians["proxy_cpu_ms_per_conn"] / m.direct("all_cpu_ms_per_conn")
			}), atMost("≤ 1.2× (issue 19)", 1.2)},
		{"proxy CPU ms per MB (bulk HTTP/1.1)", "proxy_cpu_ms_per_mb", "%.2f", false, m.med("proxy_cpu_ms_per_mb"), nil},
		{"all processes' CPU ms per new connection (full)", "all_cpu_ms_per_conn", "%.2f", true, m.med("all_cpu_ms_per_conn"), nil},
		{"  CPU-bound handshakes/s vs direct (estimate)", "cpu_bound_handshakes_ratio", "%.2f×", false,
			m.cpuBound("all_cpu_ms_per_conn"), &goal{text: "≥ 0.48× (limit ≈ 0.5×)", ok: func(v, _ float64) bool { return v >= 0.48 }}},
		{"all processes' CPU ms per MB (bulk HTTP/1.1)", "all_cpu_ms_per_mb", "%.2f", true, m.med("all_cpu_ms_per_mb"), nil},
		{"  CPU-bound bulk MB/s vs direct (estimate)", "cpu_bound_bulk_ratio", "%.2f×", false,
			m.cpuBound("all_cpu_ms_per_mb"), &goal{text: "≥ 0.47× (limit ≈ 0.5×)", ok: func(v, _ float64) bool { return v >= 0.47 }}},
		{"proxy CPU seconds, whole run", "cpu_seconds", "%.1f", false,
			proxyOnly(func(c *contenderReport) float64 { return c.Process.CPUSeconds }), nil},
		{"failed requests, whole run", "errors", "%.0f", false,
			func(c *contenderReport) float64 { return float64(c.Errors) }, nil},
	}
}
