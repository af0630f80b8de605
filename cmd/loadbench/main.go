// Command loadbench measures tlsresume side by side with a direct
// connection and with mitmproxy, on loopback, in one run.
//
// An in-process Go HTTPS origin (TLS 1.3, session tickets, HTTP/1.1 and
// h2) is reached three ways — directly, through `tlsresume proxy` and
// through `mitmdump`, both run as subprocesses — by in-process Go clients
// using HTTP CONNECT; optionally also through tlsresume's WireGuard server
// (tlsresume+wg), the clients then a WireGuard device in this process. Each rep runs every phase for every contender, the
// contenders' order rotating from rep to rep; the table shows medians over
// reps and ratios to direct. Every phase is bounded in time and requests,
// and all traffic stays on 127.0.0.1.
//
//	go run ./cmd/loadbench
//	go run ./cmd/loadbench -reps 5 -phase 5s -json loadbench.json
//	go run ./cmd/loadbench -contenders direct,tlsresume -tlsresume /tmp/tlsresume
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are loadbench's flags.
type options struct {
	s          settings
	contenders string
	tlsresume  string // binary; "" builds ./cmd/tlsresume
	tlsArgs    string // more flags for every tlsresume contender
	baseline   string // another tlsresume binary, the baseline contender
	mitmdump   string
	chromium   string
	jsonFile   string
	keep       bool
	tunnelAddr string // run as the tunnel contender's relay instead
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.s.Reps, "reps", 3, "repetitions; each runs every phase for every contender")
	fs.DurationVar(&o.s.Phase, "phase", 3*time.Second, "longest a phase runs")
	fs.Int64Var(&o.s.MaxRequests, "max-requests", 100000, "most requests a throughput phase starts")
	fs.Int64Var(&o.s.SeqRequests, "seq-requests", 1000, "most requests in the sequential new-connection latency phase")
	fs.Int64Var(&o.s.WarmRequests, "warm-requests", 3000, "most requests in the warm-connection latency phase")
	fs.IntVar(&o.s.Held, "held", 1000, "connections held open (TLS done, idle) during the held phase, which times new connections meanwhile; 0 skips it")
	fs.IntVar(&o.s.Workers, "workers", 8, "workers in the new-connection throughput phases")
	fs.IntVar(&o.s.BulkWorkers, "bulk-workers", 4, "workers in the bulk phases")
	fs.DurationVar(&o.s.Settle, "settle", 200*time.Millisecond, "pause after each phase")
	fs.StringVar(&o.contenders, "contenders", "direct,tlsresume,mitmproxy", "comma-separated contenders to measure; add tunnel for a blind CONNECT relay in a separate process (the floor for any out-of-process proxy), tlsresume+page for tlsresume with its live view open in headless Chromium, tlsresume+pool for tlsresume --upstream-reuse pool, tlsresume+wg for tlsresume --wireguard with the clients a WireGuard device in loadbench's process (a user-space netstack) dialling the origin through the tunnel")
	fs.StringVar(&o.tlsArgs, "tlsresume-args", "", "more `flags` for every tlsresume contender, space-separated, e.g. -tlsresume-args '--web off'")
	fs.StringVar(&o.tlsresume, "tlsresume", "", "tlsresume binary (default: go build ./cmd/tlsresume into a temporary directory)")
	fs.StringVar(&o.baseline, "baseline", "", "another tlsresume `binary` (an earlier commit's build), measured as the baseline contender beside tlsresume with the same flags; adds baseline to -contenders")
	fs.StringVar(&o.mitmdump, "mitmdump", "mitmdump", "mitmdump binary")
	fs.StringVar(&o.chromium, "chromium", "chromium", "browser for the tlsresume+page contender (tlsresume with its live view open)")
	fs.StringVar(&o.jsonFile, "json", "", "also write the results as JSON to `file`")
	fs.StringVar(&o.tunnelAddr, "tunnel-serve", "", "internal: serve as the tunnel contender's blind CONNECT relay on `address`")
	phaseList := fs.String("phases", "", "comma-separated phases to run, e.g. bulk_h1,bulk_h2 to profile one kind of load (default: all: "+strings.Join(phaseNames(), ", ")+")")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (proxies' logs, CAs) and print its path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.tunnelAddr != "" {
		if err := serveTunnel(ctx, o.tunnelAddr); err != nil {
			fmt.Fprintf(stderr, "loadbench: %v\n", err)
			return 1
		}
		return 0
	}
	if *phaseList != "" {
		for _, name := range strings.Split(*phaseList, ",") {
			if !slices.Contains(phaseNames(), name) {
				fmt.Fprintf(stderr, "loadbench: -phases: no phase %q (there are %s)\n", name, strings.Join(phaseNames(), ", "))
				return 2
			}
			o.s.Only = append(o.s.Only, name)
		}
	}
	if o.s.Reps < 1 || o.s.Phase <= 0 || o.s.Workers < 1 || o.s.BulkWorkers < 1 || o.s.MaxRequests < 1 {
		fmt.Fprintln(stderr, "loadbench: -reps, -phase, -workers, -bulk-workers and -max-requests must be positive")
		return 2
	}
	// The contenders start in a temporary directory: a binary named by a
	// relative path is looked for from here.
	for _, bin := range []*string{&o.tlsresume, &o.baseline} {
		if *bin != "" && strings.ContainsRune(*bin, filepath.Separator) {
			if abs, err := filepath.Abs(*bin); err == nil {
				*bin = abs
			}
		}
	}
	r, err := bench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadbench: %v\n", err)
		return 1
	}
	printReport(stdout, r)
	if o.jsonFile != "" {
		if err := writeJSON(o.jsonFile, r); err != nil {
			fmt.Fprintf(stderr, "loadbench: %v\n", err)
			return 1
		}
	}
	return 0
}

// bench starts the origin and the contenders, runs the reps and stops
// everything it started.
func bench(ctx context.Context, o options, progress io.Writer) (*report, error) {
	r := &report{Machine: readMachine(), Settings: o.s, Started: time.Now()}
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(progress, "loadbench: files in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	org, err := startOrigin(dir)
	if err != nil {
		return nil, err
	}
	defer org.close()

	contenders := setUp(ctx, o, dir, org, &r.Machine, progress)
	defer func() {
		for _, c := range contenders {
			c.stop()
		}
	}()
	var active []*contender
	for _, c := range contenders {
		if c.skipped == "" {
			active = append(active, c)
		}
	}
	r.Load.ours = func() float64 {
		sum := selfCPU()
		for _, c := range active {
			sum += c.cpuSeconds()
		}
		return sum
	}
	r.Load.start()
	if err := runReps(ctx, active, org, o.s, progress); err != nil {
		return nil, err
	}
	r.Load.end()
	for _, c := range contenders {
		c.stop()
		r.Contenders = append(r.Contenders, collect(c, progress))
	}
	r.Table = buildTable(r.Contenders)
	r.OriginErrors = org.errs.samples()
	r.Seconds = time.Since(r.Started).Seconds()
	return r, nil
}

// runReps runs every phase of every rep. Contenders take turns phase by
// phase, the order rotating, so that a change in the machine's load (other
// processes) is shared out among them.
func runReps(ctx context.Context, active []*contender, org *origin, s settings, progress io.Writer) error {
	for rep := range s.Reps {
		for _, c := range active {
			c.reps = append(c.reps, repResult{Rep: rep, Phases: map[string]phaseResult{}})
		}
		for pi, p := range phases {
			if !s.runs(p.name) {
				continue
			}
			if p.name == "held" && rep != s.Reps-1 {
				// In the last rep only: the memory a thousand held connections
				// took would stay in the proxy's RSS through the reps after.
				continue
			}
			for slot := range active {
				c := active[(rep+pi+slot)%len(active)]
				runPhase(ctx, c, p, slot, org, s)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		for _, c := range active {
			fmt.Fprintf(progress, "rep %d/%d %-14s %s\n", rep+1, s.Reps, c.name, brief(c.reps[rep]))
		}
	}
	return nil
}

// collect summarises a stopped contender, with what its proxy wrote.
func collect(c *contender, progress io.Writer) contenderReport {
	cr := summarize(c)
	if c.skipped != "" {
		return cr
	}
	switch c.name {
	case nameTLSResume, nameTLSResumePage, nameTLSResumePool, nameTLSResumeWG, nameBaseline:
		st, err := readRecordLog(c.logFile)
		if err != nil {
			fmt.Fprintf(progress, "loadbench: %v\n", err)
		}
		cr.RecordLog = st
		cr.OutputLines, cr.OutputFirst = countOutput(c.stderr, func(l string) bool {
			return strings.Contains(l, " WRN ") || strings.Contains(l, " ERR ") || strings.Contains(l, "panic")
		})
	case nameMitm:
		// mitmdump -q prints only what goes wrong.
		cr.OutputLines, cr.OutputFirst = countOutput(c.stderr, func(l string) bool { return strings.TrimSpace(l) != "" })
	}
	return cr
}

// setUp starts the contenders named in o, in the table's order; one that
// cannot start is kept, skipped, with the reason.
func setUp(ctx context.Context, o options, dir string, org *origin, m *machine, progress io.Writer) []*contender {
	want := map[string]bool{nameBaseline: o.baseline != ""}
	for _, n := range strings.Split(o.contenders, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []*contender
	for _, name := range []string{nameDirect, nameTunnel, nameBaseline, nameTLSResume, nameTLSResumeWG, nameTLSResumePage, nameTLSResumePool, nameMitm} {
		if !want[name] {
			continue
		}
		c, err := startContender(ctx, name, &o, dir, org, m)
		if err != nil {
			c = &contender{name: name, skipped: err.Error()}
			fmt.Fprintf(progress, "loadbench: %s skipped: %v\n", name, err)
		} else if c.cmd != nil {
			pid := c.cmd.Process.Pid
			c.d.rss = func() float64 { return readProc(pid).RSSMB }
		}
		out = append(out, c)
	}
	return out
}

func startContender(ctx context.Context, name string, o *options, dir string, org *origin, m *machine) (*contender, error) {
	switch name {
	case nameDirect:
		return &contender{name: nameDirect, d: &dialer{origin: org.addr, roots: org.roots}}, nil
	case nameTunnel:
		sub := filepath.Join(dir, nameTunnel)
		if err := os.Mkdir(sub, 0o700); err != nil {
			return nil, err
		}
		return startTunnel(ctx, sub, org)
	case nameTLSResume, nameTLSResumePage, nameTLSResumePool, nameTLSResumeWG:
		bin := o.tlsresume
		if bin == "" {
			var err error
			if bin, err = buildTLSResume(ctx, dir); err != nil {
				return nil, err
			}
			o.tlsresume = bin
		}
		m.TLSResume = version(bin, "version")
		chromium := ""
		if name == nameTLSResumePage {
			var err error
			if chromium, err = exec.LookPath(o.chromium); err != nil {
				return nil, fmt.Errorf("chromium not found (%v): install Debian's chromium package or pass -chromium", err)
			}
		}
		sub := filepath.Join(dir, name)
		if err := os.Mkdir(sub, 0o700); err != nil {
			return nil, err
		}
		extra := strings.Fields(o.tlsArgs)
		switch name {
		case nameTLSResumePool:
			extra = append(extra, "--upstream-reuse", "pool")
		case nameTLSResumeWG:
			return startTLSResumeWG(ctx, bin, sub, org, extra...)
		}
		return startTLSResume(ctx, name, bin, sub, org, chromium, extra...)
	case nameBaseline:
		if o.baseline == "" {
			return nil, fmt.Errorf("no -baseline binary given")
		}
		sub := filepath.Join(dir, name)
		if err := os.Mkdir(sub, 0o700); err != nil {
			return nil, err
		}
		return startTLSResume(ctx, name, o.baseline, sub, org, "", strings.Fields(o.tlsArgs)...)
	case nameMitm:
		bin, err := exec.LookPath(o.mitmdump)
		if err != nil {
			return nil, fmt.Errorf("mitmdump not found (%v): install Debian's mitmproxy package or pass -mitmdump", err)
		}
		m.Mitmproxy = version(bin, "--version")
		sub := filepath.Join(dir, nameMitm)
		if err := os.Mkdir(sub, 0o700); err != nil {
			return nil, err
		}
		return startMitm(ctx, bin, sub, org)
	}
	return nil, fmt.Errorf("unknown contender %q", name)
}

// runPhase runs one phase against one contender, reading the origin's
// counters and the contender's CPU time around it.
func runPhase(ctx context.Context, c *contender, p phase, slot int, org *origin, s settings) {
	before, cpu, self := org.counts(), c.cpuSeconds(), selfCPU()
	// The proxy's resident memory, sampled every 50 ms during the phase.
	var maxRSS float64
	sampled := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if c.d.rss != nil {
				maxRSS = max(maxRSS, c.d.rss())
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	pr := p.run(ctx, c.d, s)
	close(stop)
	<-sampled
	pr.MaxRSSMB = maxRSS
	time.Sleep(s.Settle)
	pr.Origin = org.counts().sub(before)
	pr.Slot = slot
	pr.ProxyCPU = c.cpuSeconds() - cpu
	pr.BenchCPU = selfCPU() - self
	c.ownCPU += pr.ProxyCPU
	c.reps[len(c.reps)-1].Phases[p.name] = pr
}

// selfCPU is loadbench's own CPU time: its clients and the origin.
func selfCPU() float64 { return readProc(os.Getpid()).CPUSeconds }

// brief is one progress line.
func brief(r repResult) string {
	p := r.Phases
	var errs int64
	for _, pr := range p {
		errs += pr.Errors
	}
	var parts []string
	add := func(phase, format string, v float64) {
		if _, ran := p[phase]; ran {
			parts = append(parts, fmt.Sprintf(format, v))
		}
	}
	add("handshakes_full", "full %.0f/s", p["handshakes_full"].perSecond())
	add("handshakes_resumed", "resumed %.0f/s", p["handshakes_resumed"].perSecond())
	add("bulk_h1", "bulk h1 %.0f MB/s", p["bulk_h1"].mbPerSecond())
	add("bulk_h2", "h2 %.0f MB/s", p["bulk_h2"].mbPerSecond())
	add("sequential", "seq p50 %.2f ms", p["sequential"].P50MS)
	add("warm", "warm p50 %.3f ms", p["warm"].P50MS)
	parts = append(parts, fmt.Sprintf("origin resumed %d/%d", sumOrigin(p).Resumed, sumOrigin(p).Handshakes), fmt.Sprintf("errors %d", errs))
	return strings.Join(parts, "  ")
}

func sumOrigin(p map[string]phaseResult) originCounts {
	var o originCounts
	for _, r := range p {
		o.Handshakes += r.Origin.Handshakes
		o.Resumed += r.Origin.Resumed
		o.Errors += r.Origin.Errors
	}
	return o
}
