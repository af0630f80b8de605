package inspect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// corpusDir is ../shared/corpora/ja4corpus beside the repository: FoxIO's JA4
// test captures and nDPI's Apple captures, with expected values that our
// parser did not produce (tshark's fields, FoxIO's and nDPI's fingerprints).
func corpusDir(t testing.TB) string {
	dir := filepath.Join("..", "..", "shared", "corpora", "ja4corpus")
	if _, err := os.Stat(filepath.Join(dir, "ground_truth.jsonl")); err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	return dir
}

// truth is one row of ground_truth.jsonl (see the corpus README).
type truth struct {
	Capture              string  `json:"capture"`
	Frame                int     `json:"frame"`
	Transport            string  `json:"transport"`
	Src                  string  `json:"src"`
	Dst                  string  `json:"dst"`
	Random               string  `json:"random"`
	SNI                  *string `json:"sni"`
	JA4                  string  `json:"ja4"`
	JA4R                 *string `json:"ja4_r"`
	JA4RDerived          *string `json:"ja4_r_derived"`
	JA3Hash              string  `json:"ja3_hash"`
	JA3Full              string  `json:"ja3_full"`
	SessionTicketPresent bool    `json:"session_ticket_present"`
	SessionTicketLen     *int    `json:"session_ticket_len"`
	PSKPresent           bool    `json:"psk_present"`
	PSKIdentityCount     int     `json:"psk_identity_count"`
	PSKModes             []int   `json:"psk_key_exchange_modes"`
	EarlyData            bool    `json:"early_data"`
	SessionIDLen         int     `json:"session_id_len"`
	Extensions           []int   `json:"extensions"`
}

func loadTruth(t *testing.T, path string) []truth {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []truth
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r truth
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// captureRecords reads a capture and indexes its records by frame.
func captureRecords(t *testing.T, path string) map[int][]*Record {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byFrame := map[int][]*Record{}
	if _, err := ReadCapture(bufio.NewReader(f), func(r *Record) error {
		byFrame[r.Frame] = append(byFrame[r.Frame], r)
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return byFrame
}

// TestCorpusGroundTruth checks every TCP and QUIC ClientHello of the
// corpus against FoxIO's JA4 and tshark's view of the resumption fields.
func TestCorpusGroundTruth(t *testing.T) {
	dir := corpusDir(t)
	rows := loadTruth(t, filepath.Join(dir, "ground_truth.jsonl"))
	apple := loadTruth(t, filepath.Join(dir, "apple", "ground_truth_apple.jsonl"))
	rows = append(rows, apple...)
	caps := map[string]map[int][]*Record{}
	checked := map[string]int{}
	for _, want := range rows {
		recs, ok := caps[want.Capture]
		if !ok {
			recs = captureRecords(t, filepath.Join(dir, want.Capture))
			caps[want.Capture] = recs
		}
		name := fmt.Sprintf("%s#%d", want.Capture, want.Frame)
		var got *Record
		for _, r := range recs[want.Frame] {
			if r.ClientHello != nil && r.ClientHello.Random == want.Random {
				got = r
			}
		}
		if got == nil {
			t.Errorf("%s: no record for the ClientHello with random %s", name, want.Random)
			continue
		}
		checked[want.Transport]++
		if got.TransportName() != want.Transport {
			t.Errorf("%s: transport %q, want %q", name, got.TransportName(), want.Transport)
		}
		if want.Transport == "quic" && (got.QUIC == nil || got.QUIC.DCID == "" || got.QUIC.VersionName != "v1") {
			t.Errorf("%s: quic facts %+v, want the v1 connection IDs", name, got.QUIC)
		}
		compareTruth(t, name, got, want)
	}
	if checked["tcp"] < 150 || checked["quic"] != 51 {
		t.Errorf("checked %v hellos; the corpus has 161 + 22 TCP and 51 QUIC", checked)
	}
	t.Logf("checked %d TCP and %d QUIC ClientHellos", checked["tcp"], checked["quic"])
}

func compareTruth(t *testing.T, name string, got *Record, want truth) {
	ch := got.ClientHello
	diff := func(field string, g, w any) {
		t.Errorf("%s: %s = %v, want %v", name, field, g, w)
	}
	if want.SNI != nil && got.SNI != *want.SNI {
		diff("sni", got.SNI, *want.SNI)
	}
	if ch.JA4 != want.JA4 {
		diff("ja4", ch.JA4, want.JA4)
	}
	wantR := want.JA4R
	if wantR == nil {
		wantR = want.JA4RDerived
	}
	if wantR != nil && ch.JA4R != *wantR {
		diff("ja4_r", ch.JA4R, *wantR)
	}
	if ch.JA3 != want.JA3Full {
		diff("ja3", ch.JA3, want.JA3Full)
	}
	if ch.JA3Hash != want.JA3Hash {
		diff("ja3_hash", ch.JA3Hash, want.JA3Hash)
	}
	if ch.SessionTicket.Offered != want.SessionTicketPresent {
		diff("session_ticket.offered", ch.SessionTicket.Offered, want.SessionTicketPresent)
	}
	if want.SessionTicketLen != nil && ch.SessionTicket.Len != *want.SessionTicketLen {
		diff("session_ticket.len", ch.SessionTicket.Len, *want.SessionTicketLen)
	}
	if ch.PreSharedKey.Offered != want.PSKPresent || len(ch.PreSharedKey.Identities) != want.PSKIdentityCount {
		diff("pre_shared_key", ch.PreSharedKey, fmt.Sprint(want.PSKPresent, want.PSKIdentityCount))
	}
	if (ch.PSKKeyExchangeModes == nil) != (want.PSKModes == nil) || !slices.Equal(ch.PSKKeyExchangeModes, want.PSKModes) {
		diff("psk_key_exchange_modes", ch.PSKKeyExchangeModes, want.PSKModes)
	}
	if ch.EarlyData != want.EarlyData {
		diff("early_data", ch.EarlyData, want.EarlyData)
	}
	if ch.SessionIDLen != want.SessionIDLen {
		diff("session_id_len", ch.SessionIDLen, want.SessionIDLen)
	}
	if !slices.Equal(ch.Extensions, want.Extensions) {
		diff("extensions", ch.Extensions, want.Extensions)
	}
}
