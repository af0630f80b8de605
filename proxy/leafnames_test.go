package proxy

import (
	"crypto/tls"
	"slices"
	"testing"
)

// TestLeafNamesLeftOut: an origin whose certificate carries SANs that are
// not host names (a space, a '!', an empty label, a second wildcard) still
// gets its clients through: the leaf shown to them carries the origin's
// valid names, the record lists the others in mirrored.names_left_out, and
// the client's handshake succeeds (it used to fail with internal_error,
// every time, because minting refused the whole set).
func TestLeafNamesLeftOut(t *testing.T) {
	bad := []string{"*.*.wild.test", "a..b.test", "bad name.test", "x!y.test"}
	leaf := leafSignedByOrigin(t, append([]string{"origin.test", "alt.origin.test"}, bad...)...)
	o := startOrigin(t, func(c *tls.Config) { c.Certificates = []tls.Certificate{leaf} })
	e := startProxy(t, tempDir(t), nil)

	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake through the proxy: %v", err)
	}
	shown := tc.ConnectionState().PeerCertificates[0]
	if err := shown.VerifyHostname("alt.origin.test"); err != nil {
		t.Errorf("the leaf shown lost the origin's valid names: %v (DNS names %q)", err, shown.DNSNames)
	}
	for _, n := range bad {
		if slices.Contains(shown.DNSNames, n) {
			t.Errorf("the leaf shown carries %q", n)
		}
	}
	tc.Close()

	r := e.next()
	if r.ClientLeg == nil || r.ClientLeg.Error != "" {
		t.Fatalf("client leg: %+v", r.ClientLeg)
	}
	if !slices.Equal(r.Mirrored.NamesLeftOut, bad) {
		t.Errorf("mirrored.names_left_out = %q, want %q", r.Mirrored.NamesLeftOut, bad)
	}
	for _, want := range []string{"alt.origin.test", "origin.test", "127.0.0.1"} {
		if !slices.Contains(r.Mirrored.Names, want) {
			t.Errorf("mirrored.names = %q, want %q among them", r.Mirrored.Names, want)
		}
	}
	for _, n := range bad {
		if slices.Contains(r.Mirrored.Names, n) {
			t.Errorf("mirrored.names = %q holds %q, which the leaf cannot carry", r.Mirrored.Names, n)
		}
	}
}
