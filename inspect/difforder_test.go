package inspect

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// portsLogRecords reads testdata/ports_log.jsonl, a real --log (see
// TestReportPortsLog).
func portsLogRecords(t *testing.T) []*ConnRecord {
	f, err := os.Open(filepath.Join("testdata", "ports_log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, bad, _, err := ReadLog(f)
	if err != nil || bad != 0 {
		t.Fatalf("ReadLog: %d bad, %v", bad, err)
	}
	return recs
}

// TestDiffResumptionFirst: curl (1 of 5 resumed) against headless Chromium
// (15 of 27), from a real --log: the resumption rows come first, and a
// share of 1 in 5 against 15 in 27 is a difference in the PSK offers, the
// attempts, the resumptions and the tickets brought back, though both are
// "some".
func TestDiffResumptionFirst(t *testing.T) {
	a, _ := ParseSelector("program=curl")
	b, _ := ParseSelector("program=HeadlessChrome")
	d, err := CompareSelected(portsLogRecords(t), a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Rows[0].Section != DiffResumption || d.Rows[0].Field != "connections" {
		t.Errorf("first row %s/%s, want resumption/connections", d.Rows[0].Section, d.Rows[0].Field)
	}
	for _, tt := range []struct{ field, a, b string }{
		{"pre_shared_key", "in 1 of 5 hellos (1 identity)", "in 15 of 27 hellos (1 identity)"},
		{"attempts", "psk in 1, none in 4 of 5 connections", "psk in 15, none in 12 of 27 connections"},
		{"client_resumed", "1 of 5", "15 of 27"},
		{"tickets_brought_back", "1 of 5: c1 → c2", "15 of 27: c32 → c33, c33 → c34, c34 → c35 and 12 more"},
	} {
		r := rowOf(t, d, tt.field)
		if r.A != tt.a || r.B != tt.b || !r.Differs || r.Meaning == "" {
			t.Errorf("%s: %q against %q, differs %v, meaning %q; want %q against %q, marked", tt.field, r.A, r.B, r.Differs, r.Meaning, tt.a, tt.b)
		}
	}
	// Shares that do not differ in kind or by 10 points or more are alike.
	for _, field := range []string{"extended_master_secret", "upstream_resumed", "early_data"} {
		if r := rowOf(t, d, field); r.Differs {
			t.Errorf("%s: %q against %q marked as a difference", field, r.A, r.B)
		}
	}
	if !sharesDiffer(1, 4, 15, 26) || sharesDiffer(2, 2, 3, 3) || sharesDiffer(14, 26, 15, 27) || !sharesDiffer(0, 3, 1, 3) {
		t.Error("sharesDiffer: 1/4 against 15/26 differ; 2/2 against 3/3 and 14/26 against 15/27 do not; none against some do")
	}
}

// TestDiffFoldsFingerprints: the fingerprint rows are marked and briefed,
// and WriteDiff folds each to one line (Chromium's 27 JA3 hashes are one
// count) while WriteDiffAll and the JSON keep every value.
func TestDiffFoldsFingerprints(t *testing.T) {
	a, _ := ParseSelector("program=curl")
	b, _ := ParseSelector("program=HeadlessChrome")
	d, err := CompareSelected(portsLogRecords(t), a, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ field, a, b string }{
		{"supported_groups", "one list of 10", "one list of 5"},
		{"extensions", "2 distinct lists in 5 hellos", "27 distinct lists in 27 hellos"},
		{"cipher_suites", "31", "15"},
		{"ja4", "2 distinct in 5 hellos", "2 distinct in 27 hellos"},
		{"ja3_hash", "2 distinct in 5 hellos", "27 distinct in 27 hellos"},
	} {
		r := rowOf(t, d, tt.field)
		if !r.Fingerprint || r.ABrief != tt.a || r.BBrief != tt.b || !r.Differs {
			t.Errorf("%s: fingerprint %v, briefs %q, %q; want %q, %q", tt.field, r.Fingerprint, r.ABrief, r.BBrief, tt.a, tt.b)
		}
	}
	if r := rowOf(t, d, "pre_shared_key"); r.Fingerprint || r.ABrief != "" {
		t.Errorf("pre_shared_key folded: %+v", r)
	}
	ja3 := rowOf(t, d, "ja3_hash")
	var folded, all bytes.Buffer
	if err := WriteDiff(&folded, d); err != nil {
		t.Fatal(err)
	}
	WriteDiffAll(&all, d)
	for _, tt := range []struct {
		name string
		out  string
		want []string
		not  []string
	}{
		{"folded", folded.String(),
			[]string{"≠ ja3_hash               2 distinct in 5 hellos                          27 distinct in 27 hellos\n", "--all shows every value"},
			[]string{ja3.B[:32], "only A sends"}},
		{"all", all.String(), []string{ja3.B[:32], "only A sends"}, []string{"--all shows every value"}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(tt.out, w) {
				t.Errorf("%s lacks %q:\n%s", tt.name, w, tt.out)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(tt.out, w) {
				t.Errorf("%s has %q:\n%s", tt.name, w, tt.out)
			}
		}
		for _, line := range strings.Split(tt.out, "\n") {
			if runeLen(line) > 120 {
				t.Errorf("%s: line of %d columns: %q", tt.name, runeLen(line), line)
			}
		}
	}
	if n, m := strings.Count(folded.String(), "\n"), strings.Count(all.String(), "\n"); n > 60 || m < n+40 {
		t.Errorf("folded %d lines, all %d", n, m)
	}
}
