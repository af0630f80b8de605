package inspect

import "math"

// roundMS rounds milliseconds to microseconds, the clock's precision in a
// record: a sum of durations (an upstream leg's handshake and its extra
// handshakes) shows as 2.103, not as 2.1029999999999998.
func roundMS(ms float64) float64 { return math.Round(ms*1000) / 1000 }

// roundDurations rounds r's durations to microseconds in place, for a
// record just decoded (ReadLog): a log written before records were
// rounded (Capped) reads, and is written again, as a new one would be.
func (r *ConnRecord) roundDurations() {
	r.DurationMS = roundMS(r.DurationMS)
	if r.ClientLeg != nil {
		r.ClientLeg.HandshakeMS = roundMS(r.ClientLeg.HandshakeMS)
	}
	if r.UpstreamLeg != nil {
		r.UpstreamLeg.HandshakeMS = roundMS(r.UpstreamLeg.HandshakeMS)
	}
}
