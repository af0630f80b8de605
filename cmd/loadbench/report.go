package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// report is everything one run measured; --json writes it as is.
type report struct {
	Machine    machine           `json:"machine"`
	Load       machineLoad       `json:"load"`
	Settings   settings          `json:"settings"`
	Started    time.Time         `json:"started"`
	Seconds    float64           `json:"seconds"`
	Contenders []contenderReport `json:"contenders"`
	Table      []tableRow        `json:"table"`
	// OriginErrors are the first lines net/http logged at the origin (TLS
	// handshake errors, for instance); the counts are in each phase.
	OriginErrors []string `json:"origin_errors,omitempty"`
}

type machine struct {
	CPUs       int    `json:"cpus"` // runtime.NumCPU: CPUs this process may use
	GOMAXPROCS int    `json:"gomaxprocs"`
	Model      string `json:"model"` // /proc/cpuinfo "model name"
	Go         string `json:"go"`
	OS         string `json:"os"`
	TLSResume  string `json:"tlsresume,omitempty"`
	Mitmproxy  string `json:"mitmproxy,omitempty"`
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, Model: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// machineLoad is how busy the machine was during the reps, and how much
// of that was other processes: on a shared machine they skew the numbers.
type machineLoad struct {
	LoadAvgStart string  `json:"loadavg_start"`
	LoadAvgEnd   string  `json:"loadavg_end"`
	BusyPct      float64 `json:"busy_pct"`   // of all CPUs (/proc/stat), steal included
	OthersPct    float64 `json:"others_pct"` // of all CPUs, used by processes other than loadbench and its proxies

	ours               func() float64 // CPU seconds of loadbench and its subprocesses
	busy0, total0, us0 float64
}

func (l *machineLoad) start() {
	l.LoadAvgStart = loadAvg()
	l.busy0, l.total0 = cpuTicks()
	l.us0 = l.ours()
}

func (l *machineLoad) end() {
	l.LoadAvgEnd = loadAvg()
	busy, total := cpuTicks()
	us := l.ours() - l.us0
	if dt := total - l.total0; dt > 0 {
		// /proc/stat counts USER_HZ ticks, 100 a second (proc(5)).
		l.BusyPct = 100 * (busy - l.busy0) / dt
		l.OthersPct = max(0, 100*((busy-l.busy0)/100-us)/(dt/100))
	}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuTicks reads the busy and total ticks of all CPUs from /proc/stat:
// busy is user, nice, system, irq, softirq and steal.
func cpuTicks() (busy, total float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:9] {
		v, _ := strconv.ParseFloat(s, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// contenderReport is one contender's whole run.
type contenderReport struct {
	Name    string             `json:"name"`
	Skipped string             `json:"skipped,omitempty"`
	Reps    []repResult        `json:"reps,omitempty"`
	Medians map[string]float64 `json:"medians,omitempty"`
	Errors  int64              `json:"errors"` // failed requests, all phases and reps
	// Origin sums the origin's handshakes over this contender's phases: for
	// a proxy, its upstream handshakes and how many resumed.
	Origin    originCounts `json:"origin"`
	Process   *procStats   `json:"process,omitempty"`
	RecordLog *logStats    `json:"record_log,omitempty"` // tlsresume's --log
	// Output counts the subprocess's warning and error lines (tlsresume's
	// WRN/ERR console lines; any line of mitmdump -q) and keeps a few.
	OutputLines int      `json:"output_lines"`
	OutputFirst []string `json:"output_first,omitempty"`
}

// logStats summarises tlsresume's JSONL records.
type logStats struct {
	Records         int            `json:"records"`
	UpstreamOK      int            `json:"upstream_ok"`      // upstream_leg without error
	UpstreamResumed int            `json:"upstream_resumed"` // upstream_leg.resumed
	ExtraHandshakes int            `json:"extra_handshakes"` // upstream_leg.extra_handshakes summed
	ClientResumed   int            `json:"client_resumed"`   // client_leg.resumed
	WithError       int            `json:"with_error"`       // records with error, client_leg.error or upstream_leg.error
	Verdicts        map[string]int `json:"verdicts"`
	// Sources counts records by source and device ("connect",
	// "wireguard bench"): the tunnel's connections must say wireguard.
	Sources     map[string]int `json:"sources"`
	FirstErrors []string       `json:"first_errors,omitempty"`
}

// readRecordLog reads tlsresume's --log file (README.md, "The record").
func readRecordLog(path string) (*logStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading tlsresume's record log: %w", err)
	}
	defer f.Close()
	st := &logStats{Verdicts: map[string]int{}, Sources: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec inspect.ConnRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return st, fmt.Errorf("record %d of %s: %w", st.Records+1, path, err)
		}
		st.Records++
		st.Verdicts[string(rec.Verdict.Code)]++
		st.Sources[strings.TrimSpace(string(rec.Source)+" "+rec.Device)]++
		var errs []string
		if rec.Error != "" {
			errs = append(errs, rec.Error)
		}
		if l := rec.ClientLeg; l != nil {
			if l.Resumed {
				st.ClientResumed++
			}
			if l.Error != "" {
				errs = append(errs, "client leg: "+l.Error)
			}
		}
		if l := rec.UpstreamLeg; l != nil {
			st.ExtraHandshakes += l.ExtraHandshakes
			if l.Error != "" {
				errs = append(errs, "upstream leg: "+l.Error)
			} else {
				st.UpstreamOK++
				if l.Resumed {
					st.UpstreamResumed++
				}
			}
		}
		if len(errs) > 0 {
			st.WithError++
			if len(st.FirstErrors) < 5 {
				st.FirstErrors = append(st.FirstErrors, strings.Join(errs, "; "))
			}
		}
	}
	return st, sc.Err()
}

// countOutput counts the lines of a subprocess's output that match keep.
func countOutput(path string, keep func(string) bool) (int, []string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil
	}
	defer f.Close()
	n, first := 0, []string(nil)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); keep(line) {
			n++
			if len(first) < 5 {
				first = append(first, line)
			}
		}
	}
	return n, first
}

// metric is one per-rep number; the table shows its median over reps.
type metric struct {
	key string
	val func(repResult) float64
}

var metrics = []metric{
	{"handshakes_full_per_s", func(r repResult) float64 { return r.Phases["handshakes_full"].perSecond() }},
	{"handshakes_resumed_per_s", func(r repResult) float64 { return r.Phases["handshakes_resumed"].perSecond() }},
	{"client_resumed_pct", func(r repResult) float64 { p := r.Phases["handshakes_resumed"]; return pct(p.Resumed, p.Requests) }},
	{"bulk_h1_mb_per_s", func(r repResult) float64 { return r.Phases["bulk_h1"].mbPerSecond() }},
	{"bulk_h2_mb_per_s", func(r repResult) float64 { return r.Phases["bulk_h2"].mbPerSecond() }},
	{"sequential_p50_ms", func(r repResult) float64 { return r.Phases["sequential"].P50MS }},
	{"sequential_p99_ms", func(r repResult) float64 { return r.Phases["sequential"].P99MS }},
	{"warm_p50_ms", func(r repResult) float64 { return r.Phases["warm"].P50MS }},
	{"held_p50_ms", func(r repResult) float64 { return heldOnly(r, func(p phaseResult) float64 { return p.P50MS }) }},
	{"held_p99_ms", func(r repResult) float64 { return heldOnly(r, func(p phaseResult) float64 { return p.P99MS }) }},
	{"held_rss_mb", func(r repResult) float64 { return heldOnly(r, func(p phaseResult) float64 { return p.HeldRSSMB }) }},
	{"throughput_rss_mb", func(r repResult) float64 {
		var m float64
		for name, p := range r.Phases {
			if name != "held" {
				m = max(m, p.MaxRSSMB)
			}
		}
		return m
	}},
	{"proxy_cpu_ms_per_conn", func(r repResult) float64 {
		p := r.Phases["handshakes_full"]
		return cpuMSPer(p.ProxyCPU, float64(p.Requests))
	}},
	{"proxy_cpu_ms_per_conn_resumed", func(r repResult) float64 {
		p := r.Phases["handshakes_resumed"]
		return cpuMSPer(p.ProxyCPU, float64(p.Requests))
	}},
	{"bench_cpu_ms_per_conn", func(r repResult) float64 {
		p := r.Phases["handshakes_full"]
		return cpuMSPer(p.BenchCPU, float64(p.Requests))
	}},
	{"bench_cpu_ms_per_mb", func(r repResult) float64 { p := r.Phases["bulk_h1"]; return cpuMSPer(p.BenchCPU, float64(p.Bytes)/1e6) }},
	{"held_kb_per_conn", func(r repResult) float64 {
		return heldOnly(r, func(p phaseResult) float64 {
			if p.Held == 0 || p.HeldRSSMB == 0 {
				return math.NaN()
			}
			return (p.HeldRSSMB - p.PreHeldMB) * 1024 / float64(p.Held)
		})
	}},
	{"proxy_cpu_ms_per_mb", func(r repResult) float64 { p := r.Phases["bulk_h1"]; return cpuMSPer(p.ProxyCPU, float64(p.Bytes)/1e6) }},
	{"all_cpu_ms_per_conn", func(r repResult) float64 {
		p := r.Phases["handshakes_full"]
		return cpuMSPer(p.ProxyCPU+p.BenchCPU, float64(p.Requests))
	}},
	{"all_cpu_ms_per_mb", func(r repResult) float64 {
		p := r.Phases["bulk_h1"]
		return cpuMSPer(p.ProxyCPU+p.BenchCPU, float64(p.Bytes)/1e6)
	}},
}

// cpuMSPer is CPU milliseconds per unit of work; NaN when either is zero
// (no proxy, or no work done).
func cpuMSPer(seconds, units float64) float64 {
	if seconds == 0 || units == 0 {
		return math.NaN()
	}
	return 1000 * seconds / units
}

func pct(n, of int64) float64 {
	if of == 0 {
		return math.NaN()
	}
	return 100 * float64(n) / float64(of)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// heldOnly is f of the rep's held phase, NaN in reps without one (the held
// phase runs in the last rep only).
func heldOnly(r repResult, f func(phaseResult) float64) float64 {
	p, ok := r.Phases["held"]
	if !ok {
		return math.NaN()
	}
	return f(p)
}

// summarize fills a contender's medians and whole-run counts.
func summarize(c *contender) contenderReport {
	cr := contenderReport{Name: c.name, Skipped: c.skipped, Reps: c.reps}
	if c.skipped != "" {
		return cr
	}
	cr.Medians = map[string]float64{}
	for _, m := range metrics {
		var xs []float64
		for _, r := range c.reps {
			if v := m.val(r); !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
		cr.Medians[m.key] = median(xs)
	}
	for _, r := range c.reps {
		for _, p := range r.Phases {
			cr.Errors += p.Errors
			cr.Origin.Handshakes += p.Origin.Handshakes
			cr.Origin.Resumed += p.Origin.Resumed
			cr.Origin.Errors += p.Origin.Errors
		}
	}
	if c.name != nameDirect {
		cr.Process = &c.proc
	}
	return cr
}

// tableRow is one line of the table: a value per contender, its ratio to
// direct where that means something, and the goal for tlsresume.
type tableRow struct {
	Metric string             `json:"metric"`
	Key    string             `json:"key"`
	Values map[string]float64 `json:"values"`
	Ratios map[string]float64 `json:"ratios,omitempty"` // value / direct
	Goal   string             `json:"goal,omitempty"`
	Met    *bool              `json:"met,omitempty"` // tlsresume against the goal
	format string
}

// goal checks tlsresume's value (and its ratio to direct) against the issue.
type goal struct {
	text string
	ok   func(v, ratio float64) bool
	on   string // the contender whose value meets it or not; default tlsresume
}
