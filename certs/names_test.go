package certs

import (
	"slices"
	"testing"
)

// TestUsableNames: names a leaf cannot carry are set apart, the rest keep
// their order and spelling, and LeafFor takes what is usable.
func TestUsableNames(t *testing.T) {
	_, iss := newTestIssuer(t)
	for _, tt := range []struct {
		name             string
		in, usable, left []string
	}{
		{"all usable", []string{"Example.COM.", "*.example.com", "[::1]", "192.0.2.1"}, []string{"Example.COM.", "*.example.com", "[::1]", "192.0.2.1"}, nil},
		{"space", []string{"a.example", "bad name.example", "b.example"}, []string{"a.example", "b.example"}, []string{"bad name.example"}},
		{"stray bytes", []string{"x!y.example", "a.example", "a\x00b.example", "café.example"}, []string{"a.example"}, []string{"x!y.example", "a\x00b.example", "café.example"}},
		{"labels and wildcards", []string{"a..b.example", "*.*.example", "w*.example", ".example", "", "ok.example"}, []string{"ok.example"}, []string{"a..b.example", "*.*.example", "w*.example", ".example", ""}},
		{"none usable", []string{"bad name", "example.com:443"}, nil, []string{"bad name", "example.com:443"}},
		{"empty", nil, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			usable, left := UsableNames(tt.in)
			if !slices.Equal(usable, tt.usable) || !slices.Equal(left, tt.left) {
				t.Fatalf("UsableNames(%q) = %q, %q; want %q, %q", tt.in, usable, left, tt.usable, tt.left)
			}
			if len(usable) == 0 {
				return
			}
			if _, err := iss.LeafFor(usable); err != nil {
				t.Errorf("LeafFor(%q): %v", usable, err)
			}
		})
	}
}
