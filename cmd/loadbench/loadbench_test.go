package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(xs ...int) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 odd", ms(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"p50 even", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 tail", append(ms(make([]int, 99)...), time.Second), 0.99, 0},
		{"p99 of 10", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5}, 5},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestReadRecordLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conns.jsonl")
	lines := `{"id":"c1","client_leg":{"resumed":false},"upstream_leg":{"resumed":false},"verdict":{"code":"first_contact"}}
{"id":"c2","client_leg":{"resumed":true},"upstream_leg":{"resumed":true,"extra_handshakes":1},"verdict":{"code":"both_resumed"}}
{"id":"c3","error":"reading the ClientHello: EOF","upstream_leg":{"error":"dial: refused"},"verdict":{"code":"upstream_failed"}}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readRecordLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 3 || st.UpstreamOK != 2 || st.UpstreamResumed != 1 || st.ClientResumed != 1 ||
		st.ExtraHandshakes != 1 || st.WithError != 1 || st.Verdicts["both_resumed"] != 1 {
		t.Errorf("readRecordLog = %+v", st)
	}
}

// TestDirect runs every phase briefly against the in-process origin and
// checks the report, its table and its JSON.
func TestDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("loads loopback for about a second")
	}
	jsonFile := filepath.Join(t.TempDir(), "out.json")
	var out, errs bytes.Buffer
	args := []string{"-contenders", "direct", "-reps", "1", "-phase", "100ms", "-settle", "10ms", "-held", "50", "-json", jsonFile}
	if code := run(context.Background(), args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"machine:", "new-conn handshakes/s, full", "bulk MB/s", "warm keep-alive p50 ms", "new-conn p99 ms, connections held open", "limit: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Contenders) != 1 || len(r.Contenders[0].Reps) != 1 {
		t.Fatalf("contenders in JSON: %+v", r.Contenders)
	}
	c := r.Contenders[0]
	if c.Errors != 0 {
		t.Errorf("%d failed requests: %s", c.Errors, out.String())
	}
	for _, name := range phaseNames() {
		p := c.Reps[0].Phases[name]
		if p.Requests == 0 || p.Origin.Handshakes == 0 {
			t.Errorf("phase %s: %d requests, %d origin handshakes", name, p.Requests, p.Origin.Handshakes)
		}
	}
	res := c.Reps[0].Phases["handshakes_resumed"]
	if res.Resumed == 0 || res.Origin.Resumed != res.Resumed {
		t.Errorf("resuming phase: client resumed %d, origin counted %d", res.Resumed, res.Origin.Resumed)
	}
}

// TestWaitCA: a proxy that accepts before its CA is written (tlsresume
// binds its listeners first) is not ready until the CA is there.
func TestWaitCA(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	org, err := startOrigin(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer org.close()
	written := make(chan struct{})
	go func() {
		defer close(written)
		time.Sleep(300 * time.Millisecond)
		b, _ := os.ReadFile(org.caFile)
		os.WriteFile(caFile, b, 0o600)
	}()
	c := &contender{name: "proxy", dir: dir}
	roots, err := c.waitCA(context.Background(), ln.Addr().String(), caFile)
	if err != nil || roots == nil {
		t.Fatalf("waitCA: %v", err)
	}
	select {
	case <-written:
	default:
		t.Error("ready before the CA was written")
	}
}
