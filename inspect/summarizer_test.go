package inspect

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// TestSummarizerReusedRecord: a Summarizer handed one record reused for
// every line (as the live view unpacks its history) makes the same rows,
// why-nots included, as Summarize over records of their own.
func TestSummarizerReusedRecord(t *testing.T) {
	data, err := os.ReadFile("testdata/ports_log.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	recs, _, _, err := ReadLog(bytes.NewReader(data))
	if err != nil || len(recs) < 20 {
		t.Fatalf("reading the fixture: %d records, %v", len(recs), err)
	}
	want, _ := json.Marshal(Summarize(recs))
	z := NewSummarizer()
	var reused ConnRecord
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		reused = ConnRecord{}
		if err := json.Unmarshal(line, &reused); err != nil {
			t.Fatal(err)
		}
		reused.roundDurations()
		z.Add(&reused)
	}
	got, _ := json.Marshal(z.Summaries())
	if !bytes.Equal(got, want) {
		t.Errorf("rows from a reused record differ:\n got %s\nwant %s", got, want)
	}
}
