package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLegJSONRounds: a leg's handshake_ms is written at microseconds,
// whatever float arithmetic made it (the upstream leg adds its extra
// handshakes: 1.5 + 0.603 is 2.1029999999999998 in float64); the rest of
// the leg reads as before, HTML characters escaped only where the encoder
// asks for it, and the record decodes back.
func TestLegJSONRounds(t *testing.T) {
	a, b, c, d := 1.5, 0.603, 0.1, 0.2 // variables: constants would add exactly
	r := &ConnRecord{ID: "c1",
		ClientLeg:   &ClientLeg{Version: "1.3", HandshakeMS: c + d, Error: "<script>"},
		UpstreamLeg: &UpstreamLeg{Addr: "a.test:443", HandshakeMS: a + b, Error: "x & y"},
	}
	if a+b == 2.103 || c+d == 0.3 {
		t.Fatal("the sum is exact on this machine: the test shows nothing")
	}
	var plain bytes.Buffer
	enc := json.NewEncoder(&plain)
	enc.SetEscapeHTML(false) // as the proxy's log and the view's API write
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	escaped, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, js string
		want     []string
	}{
		{"log", plain.String(), []string{`"handshake_ms":0.3,`, `"handshake_ms":2.103,`, `"error":"<script>"`, `"error":"x & y"`}},
		{"json.Marshal", string(escaped), []string{`"handshake_ms":0.3,`, `"handshake_ms":2.103,`, `"error":"\u003cscript\u003e"`, `"error":"x \u0026 y"`}},
	} {
		for _, w := range tt.want {
			if !strings.Contains(tt.js, w) {
				t.Errorf("%s: lacks %s:\n%s", tt.name, w, tt.js)
			}
		}
	}
	var back ConnRecord
	if err := json.Unmarshal(plain.Bytes(), &back); err != nil || back.UpstreamLeg.HandshakeMS != 2.103 || back.ClientLeg.Error != "<script>" || back.ClientLeg.Version != "1.3" {
		t.Errorf("decoded %+v, %+v: %v", back.ClientLeg, back.UpstreamLeg, err)
	}
	if js, _ := json.Marshal(&ConnRecord{}); !strings.Contains(string(js), `"client_leg":null,"upstream_leg":null`) {
		t.Errorf("no legs: %s", js)
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
