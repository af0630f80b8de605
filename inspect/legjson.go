package inspect

import (
	"bytes"
	"encoding/json"
	"math"
)

// roundMS rounds milliseconds to microseconds, the clock's precision in a
// record: a sum of durations (an upstream leg's handshake and its extra
// handshakes) shows as 2.103, not as 2.1029999999999998.
func roundMS(ms float64) float64 { return math.Round(ms*1000) / 1000 }

// MarshalJSON writes the leg with handshake_ms rounded to microseconds;
// every other field as it is.
func (l ClientLeg) MarshalJSON() ([]byte, error) {
	type plain ClientLeg // without this method
	p := plain(l)
	p.HandshakeMS = roundMS(p.HandshakeMS)
	return marshalPlain(p)
}

// MarshalJSON writes the leg with handshake_ms rounded to microseconds;
// every other field as it is.
func (l UpstreamLeg) MarshalJSON() ([]byte, error) {
	type plain UpstreamLeg // without this method
	p := plain(l)
	p.HandshakeMS = roundMS(p.HandshakeMS)
	return marshalPlain(p)
}

// marshalPlain encodes v without escaping HTML characters: the encoder
// that called MarshalJSON escapes them again if it was told to, and
// leaves them as they are if not (the proxy's log and the view's API), so
// a leg reads as it did before it had a MarshalJSON.
func marshalPlain(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
