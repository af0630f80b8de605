package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSResumeWG runs every phase briefly against tlsresume reached
// through its WireGuard server by a device in this process
// (tlsresume+wg), beside tlsresume reached by CONNECT: every request
// succeeds, every record says source wireguard and the device, both legs
// resume in the resuming phase, and the table compares the two.
func TestTLSResumeWG(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tlsresume and loads loopback for a few seconds")
	}
	jsonFile := filepath.Join(t.TempDir(), "out.json")
	var out, errs bytes.Buffer
	// Two workers and small budgets, each phase up to a second: enough for
	// every worker to resume after its first handshake on a busy machine.
	args := []string{"-contenders", "tlsresume,tlsresume+wg", "-reps", "1", "-phase", "1s", "-settle", "10ms",
		"-workers", "2", "-bulk-workers", "2", "-max-requests", "30", "-seq-requests", "10", "-warm-requests", "30",
		"-held", "40", "-json", jsonFile}
	if code := run(context.Background(), args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	var wg *contenderReport
	for i, c := range r.Contenders {
		if c.Skipped != "" {
			t.Fatalf("%s skipped: %s", c.Name, c.Skipped)
		}
		if c.Name == nameTLSResumeWG {
			wg = &r.Contenders[i]
		}
	}
	if wg == nil {
		t.Fatalf("no %s in %+v", nameTLSResumeWG, r.Contenders)
	}
	if wg.Errors != 0 {
		t.Errorf("%d failed requests:\n%s", wg.Errors, out.String())
	}
	for _, name := range phaseNames() {
		if p := wg.Reps[0].Phases[name]; p.Requests == 0 {
			t.Errorf("phase %s: no request through the tunnel", name)
		}
	}
	if held := wg.Reps[0].Phases["held"]; held.Held != 40 || held.PreHeldMB == 0 || held.HeldRSSMB == 0 {
		t.Errorf("held phase: %d held, RSS %.1f MB before, %.1f MB held", held.Held, held.PreHeldMB, held.HeldRSSMB)
	}
	l := wg.RecordLog
	if l == nil || l.Records == 0 || l.Sources["wireguard "+wgDevice] != l.Records || l.WithError != 0 {
		t.Fatalf("record log: %+v; want every record from source wireguard, device %s, none with an error", l, wgDevice)
	}
	// The readiness probe's upstream handshake is the one full one.
	if l.UpstreamResumed != l.UpstreamOK-1 {
		t.Errorf("upstream: %d of %d resumed, want all but the first", l.UpstreamResumed, l.UpstreamOK)
	}
	res := wg.Reps[0].Phases["handshakes_resumed"]
	if res.Requests <= 2 {
		t.Fatalf("resuming phase: %d requests, too few for a worker's second to resume", res.Requests)
	}
	if res.Resumed == 0 || l.Verdicts["both_resumed"] < int(res.Resumed) {
		t.Errorf("resuming phase: client resumed %d, records both_resumed %d", res.Resumed, l.Verdicts["both_resumed"])
	}
	rows := map[string]tableRow{}
	for _, row := range r.Table {
		rows[row.Key] = row
	}
	for _, key := range []string{"wg_full_ratio", "wg_resumed_ratio", "wg_bulk_h1_ratio", "wg_held_kb_ratio",
		"wg_proxy_cpu_ms_per_conn", "wg_device_cpu_ms_per_conn", "wg_cpu_bound_handshakes_ratio"} {
		v, ok := rows[key].Values[nameTLSResumeWG]
		if !ok || math.IsNaN(v) {
			t.Errorf("table row %s: no value for %s", key, nameTLSResumeWG)
		}
		if _, ok := rows[key].Values[nameTLSResume]; ok {
			t.Errorf("table row %s has a value for %s", key, nameTLSResume)
		}
	}
	if !strings.Contains(out.String(), "WireGuard vs CONNECT: handshakes/s, full") || !strings.Contains(out.String(), "sources map[wireguard bench:") {
		t.Errorf("printed table lacks the WireGuard rows or the record sources:\n%s", out.String())
	}
}
