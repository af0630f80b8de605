package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestQUICFallbackPairing: a TCP connection is taken for a blocked QUIC
// connection's fallback when it is the same device's, to the same address
// (IPv4-mapped or not), port 443, arriving after the QUIC connection began
// and within inspect.QUICFallbackWindow of its last datagram; each blocked
// connection gets one, the oldest first.
func TestQUICFallbackPairing(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	dst := netip.MustParseAddrPort("192.0.2.7:443")
	w := inspect.QUICFallbackWindow
	for _, tt := range []struct {
		name   string
		device string
		dst    string
		at     time.Duration // after the QUIC connection began
		last   time.Duration // its last datagram
		want   string
	}{
		{"same device and address, at once", "phone", "192.0.2.7:443", 300 * time.Millisecond, 0, "c1"},
		{"IPv4-mapped address", "phone", "[::ffff:192.0.2.7]:443", time.Second, 0, "c1"},
		{"within the window of its last datagram", "phone", "192.0.2.7:443", 3*time.Second + w, 3 * time.Second, "c1"},
		{"past the window", "phone", "192.0.2.7:443", w + time.Millisecond, 0, ""},
		{"before the QUIC connection began", "phone", "192.0.2.7:443", -time.Millisecond, 0, ""},
		{"another device", "tablet", "192.0.2.7:443", time.Second, 0, ""},
		{"another address", "phone", "192.0.2.8:443", time.Second, 0, ""},
		{"another port", "phone", "192.0.2.7:8443", time.Second, 0, ""},
		{"no device (not WireGuard)", "", "192.0.2.7:443", time.Second, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var fb fallbacks
			b := fb.block("phone", dst, "c1", t0)
			fb.seen(b, t0.Add(tt.last))
			if got := fb.follow(tt.device, netip.MustParseAddrPort(tt.dst), "c2", t0.Add(tt.at)); got != tt.want {
				t.Errorf("follow = %q, want %q", got, tt.want)
			}
			out := fb.done(b)
			want := &inspect.QUICFallback{Blocked: true}
			if tt.want != "" {
				want.TCPConn, want.AfterMS = "c2", ms(tt.at)
			}
			if *out != *want {
				t.Errorf("done = %+v, want %+v", out, want)
			}
			if len(fb.blocked) != 0 {
				t.Errorf("%d entries left after done", len(fb.blocked))
			}
		})
	}

	// Two blocked connections to one address: the first TCP connection is
	// the older's fallback, the next the newer's, a third nobody's.
	var fb fallbacks
	b1 := fb.block("phone", dst, "c1", t0)
	b2 := fb.block("phone", dst, "c2", t0.Add(100*time.Millisecond))
	for i, want := range []string{"c1", "c2", ""} {
		if got := fb.follow("phone", dst, "t", t0.Add(time.Second)); got != want {
			t.Errorf("TCP connection %d follows %q, want %q", i+1, got, want)
		}
	}
	fb.done(b2)
	fb.done(b1)
	if len(fb.blocked) != 0 {
		t.Errorf("%d entries left after done", len(fb.blocked))
	}
}
