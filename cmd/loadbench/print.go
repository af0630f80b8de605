package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
)

// printReport writes the machine, the table and the notes for people.
func printReport(w io.Writer, r *report) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s %s\n", m.CPUs, m.GOMAXPROCS, m.Model, m.Go, m.OS)
	if m.TLSResume != "" {
		fmt.Fprintf(w, "tlsresume: %s\n", m.TLSResume)
	}
	if m.Mitmproxy != "" {
		fmt.Fprintf(w, "mitmproxy: %s\n", m.Mitmproxy)
	}
	if l := r.Load; l.LoadAvgStart != "" {
		fmt.Fprintf(w, "machine load during the reps: %.0f%% busy, %.0f%% by other processes; load average %s → %s\n",
			l.BusyPct, l.OthersPct, l.LoadAvgStart, l.LoadAvgEnd)
		if l.OthersPct > 10 {
			fmt.Fprintln(w, "warning: other processes took a large share of the CPUs: ratios are skewed; rerun on a quiet machine")
		}
	}
	s := r.Settings
	fmt.Fprintf(w, "load: %d reps, contenders take turns phase by phase, order rotating; each phase ≤ %s or %d requests (sequential %d, warm %d); %d workers new-conn, %d bulk; medians over reps; run took %.0f s\n\n",
		s.Reps, s.Phase, s.MaxRequests, s.SeqRequests, s.WarmRequests, s.Workers, s.BulkWorkers, r.Seconds)

	var names []string
	for _, c := range r.Contenders {
		if c.Skipped == "" {
			names = append(names, c.Name)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "metric")
	for _, n := range names {
		fmt.Fprintf(tw, "\t%s", n)
	}
	fmt.Fprint(tw, "\tgoal (tlsresume)\n")
	for _, row := range r.Table {
		fmt.Fprint(tw, row.Metric)
		for _, n := range names {
			v := row.Values[n]
			cell := "-"
			if !math.IsNaN(v) {
				cell = fmt.Sprintf(row.format, v)
				if ratio, ok := row.Ratios[n]; ok && !math.IsNaN(ratio) {
					cell += fmt.Sprintf(" (%.2f×)", ratio)
				}
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		g := row.Goal
		if row.Met != nil {
			g += map[bool]string{true: "  ok", false: "  MISSED"}[*row.Met]
		}
		fmt.Fprintf(tw, "\t%s\n", g)
	}
	tw.Flush()
	fmt.Fprintf(w, "limit: a proxy that makes one upstream handshake per client handshake does both ends' TLS work on the same cores,\n"+
		"  so about 0.5× direct is the most it can reach for handshakes/s and bulk MB/s (four AES-GCM passes per byte, not two);\n"+
		"  the CPU-bound rows estimate the ratio with the CPUs as the only limit. Connections held open in the held phase: %d.\n", r.Settings.Held)
	printNotes(w, r)
}

// printNotes lists skipped contenders, errors and the proxies' own counts.
func printNotes(w io.Writer, r *report) {
	fmt.Fprintln(w)
	for _, e := range r.OriginErrors {
		fmt.Fprintf(w, "origin error: %s\n", e)
	}
	for _, c := range r.Contenders {
		if c.Skipped != "" {
			fmt.Fprintf(w, "%s: skipped: %s\n", c.Name, c.Skipped)
			continue
		}
		fmt.Fprintf(w, "%s: %d failed requests; origin saw %d handshakes (%d resumed), %d server errors",
			c.Name, c.Errors, c.Origin.Handshakes, c.Origin.Resumed, c.Origin.Errors)
		if p := c.Process; p != nil {
			fmt.Fprintf(w, "; peak RSS %.1f MB, CPU %.1f s (%.1f s starting, %.1f s in its own phases)",
				p.PeakRSSMB, p.CPUSeconds, p.StartCPUSeconds, p.OwnCPUSeconds)
		}
		fmt.Fprintln(w)
		if l := c.RecordLog; l != nil {
			fmt.Fprintf(w, "  --log: %d records, upstream %d ok / %d resumed, %d extra upstream handshakes, client leg %d resumed, %d with errors; verdicts %v; sources %v\n",
				l.Records, l.UpstreamOK, l.UpstreamResumed, l.ExtraHandshakes, l.ClientResumed, l.WithError, l.Verdicts, l.Sources)
			for _, e := range l.FirstErrors {
				fmt.Fprintf(w, "    record error: %s\n", e)
			}
		}
		for _, rep := range c.Reps {
			for _, name := range phaseNames() {
				for _, e := range rep.Phases[name].FirstErrors {
					fmt.Fprintf(w, "  rep %d %s: %s\n", rep.Rep+1, name, e)
				}
			}
		}
		if c.OutputLines > 0 {
			fmt.Fprintf(w, "  %d warning/error lines in its output, first:\n", c.OutputLines)
			for _, l := range c.OutputFirst {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}

func phaseNames() []string {
	var out []string
	for _, p := range phases {
		out = append(out, p.name)
	}
	return out
}

// writeJSON writes the report; a value that is NaN (none) or infinite is
// left out, as JSON cannot carry it.
func writeJSON(path string, r *report) error {
	clean := *r
	clean.Table = nil
	for _, row := range r.Table {
		row.Values = finite(row.Values)
		row.Ratios = finite(row.Ratios)
		clean.Table = append(clean.Table, row)
	}
	clean.Contenders = nil
	for _, c := range r.Contenders {
		c.Medians = finite(c.Medians)
		clean.Contenders = append(clean.Contenders, c)
	}
	b, err := json.MarshalIndent(&clean, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// finite drops NaN and infinite values, which JSON cannot carry.
func finite(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}
