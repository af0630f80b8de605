package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestReadLogRounds: a log line written before records were rounded
// (handshake_ms 2.1029999999999998: the upstream leg adds its extra
// handshakes) reads, and is written again (the view of a saved log, a
// report's JSON), at microseconds; the rest of the record as it was.
func TestReadLogRounds(t *testing.T) {
	line := `{"client_addr":"127.0.0.1:1","id":"c1","duration_ms":3.3850000000000002,` +
		`"client_leg":{"version":"1.3","handshake_ms":0.30000000000000004,"error":"<script>"},` +
		`"upstream_leg":{"addr":"a.test:443","handshake_ms":2.1029999999999998}}`
	recs, bad, _, err := ReadLog(strings.NewReader(line + "\n"))
	if err != nil || bad != 0 || len(recs) != 1 {
		t.Fatalf("ReadLog: %d records, %d bad, %v", len(recs), bad, err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(recs[0]); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"duration_ms":3.385,`, `"handshake_ms":0.3,`, `"handshake_ms":2.103,`, `"error":"<script>"`, `"addr":"a.test:443"`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("lacks %s:\n%s", w, out.String())
		}
	}
}

// TestGroupNames: the table's HelloRetryRequest words and diff's rows name
// a group the same way.
func TestGroupNames(t *testing.T) {
	r := &Record{ClientHello: &ClientHelloRecord{Attempt: AttemptNone},
		ServerHello: &ServerHelloRecord{Version: 0x0304, HRR: true, KeyShareGroup: 0x11ec}}
	if got := Explain(r); !strings.Contains(got, "HelloRetryRequest (group X25519MLKEM768)") {
		t.Errorf("Explain: %q", got)
	}
	if got := groupNames([]int{0x0a0a, 0x11ec, 29, 0x1234}); got != "GREASE, X25519MLKEM768, x25519, 0x1234" {
		t.Errorf("groupNames: %q", got)
	}
}

// TestCappedRounds: Capped rounds a record's durations as its JSON does,
// in a copy, so the record the proxy publishes equals its log line read
// back; a record already at microseconds is returned itself.
func TestCappedRounds(t *testing.T) {
	a, b, c, d := 1.5, 0.603, 0.1, 0.2 // variables: constants would add exactly
	r := &ConnRecord{ID: "c1", DurationMS: 3.385, ClientLeg: &ClientLeg{HandshakeMS: 0.934}, UpstreamLeg: &UpstreamLeg{HandshakeMS: a + b}}
	got := r.Capped()
	if got == r || got.UpstreamLeg.HandshakeMS != 2.103 || got.ClientLeg != r.ClientLeg || r.UpstreamLeg.HandshakeMS == 2.103 {
		t.Errorf("Capped: %+v (the original %+v)", got.UpstreamLeg, r.UpstreamLeg)
	}
	if again := got.Capped(); again != got {
		t.Error("a rounded record was copied again")
	}
	if got := (&ConnRecord{DurationMS: c + d}).Capped(); got.DurationMS != 0.3 {
		t.Errorf("duration_ms %v", got.DurationMS)
	}
}
