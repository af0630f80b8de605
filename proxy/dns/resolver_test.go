package dns

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestResolver: tlsresume's own lookups go to the upstream even when a
// Server that intercepts every name is running next to it.
func TestResolver(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{Intercept: []string{"*"}})
	r := Resolver(s.Upstream())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	before := up.udp.Load() + up.tcp.Load()
	addrs, err := r.LookupHost(ctx, "www.example.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(addrs)
	if want := []string{"192.0.2.10", "2001:db8::10"}; !slices.Equal(addrs, want) {
		t.Errorf("LookupHost: %q, want %q (the upstream's, not the proxy's)", addrs, want)
	}
	mx, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mx) != 1 || mx[0].Host != "mail.example.test." {
		t.Errorf("LookupMX: %v, %v", mx, err)
	}
	if up.udp.Load()+up.tcp.Load() == before {
		t.Error("the upstream saw no query")
	}
	if a := s.Answers(); len(a) != 0 {
		t.Errorf("the server answered %d queries; want none", len(a))
	}
	// No port: 53 is assumed (nothing listens there; just check the form).
	if Resolver("192.0.2.53") == nil {
		t.Error("nil resolver")
	}
}
