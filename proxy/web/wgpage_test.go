package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoDevicePage: a view without WireGuard (tlsresume web FILE, a proxy
// without --wireguard) has no device page, no WireGuard API and no link
// to them.
func TestNoDevicePage(t *testing.T) {
	s := New(Config{})
	for _, path := range []string{"/devices", "/api/wireguard/devices", "/api/wireguard/config?peer=phone", "/api/wireguard/qr?peer=phone"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1"+path, nil))
		if rec.Code != 404 || !strings.Contains(rec.Body.String(), "--wireguard") {
			t.Errorf("%s: %d %s, want 404 saying --wireguard", path, rec.Code, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/", nil))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "/devices") {
		t.Errorf("/: %d; links the device page: %v", rec.Code, strings.Contains(rec.Body.String(), "/devices"))
	}
}
