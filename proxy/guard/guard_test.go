package guard

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCheck: which requests the guard lets through, and why it refuses
// the others.
func TestCheck(t *testing.T) {
	cfg := Config{Names: []string{"laptop.local"}, Token: "s3cret", Public: func(p string) bool { return p == "/" }}
	for _, tt := range []struct {
		name, method, host, path string
		header                   map[string]string
		want                     Reason
	}{
		{"IPv4", "GET", "127.0.0.1:9081", "/api", map[string]string{"Authorization": "Bearer s3cret"}, ""},
		{"IPv6", "GET", "[::1]:8081", "/api", map[string]string{"Authorization": "Bearer s3cret"}, ""},
		{"own name, trailing dot, any case", "GET", "Laptop.Local.:8081", "/api", map[string]string{"Authorization": "Bearer s3cret"}, ""},
		{"rebound name", "GET", "evil.example:8081", "/api", map[string]string{"Authorization": "Bearer s3cret"}, ReasonHost},
		{"name ending like ours", "GET", "evil-laptop.local", "/api", map[string]string{"Authorization": "Bearer s3cret"}, ReasonHost},
		{"lower-case bearer", "GET", "localhost", "/api", map[string]string{"Authorization": "bearer s3cret"}, ""},
		{"bearer, two spaces", "GET", "localhost", "/api", map[string]string{"Authorization": "BEARER  s3cret"}, ""},
		{"basic is not bearer", "GET", "localhost", "/api", map[string]string{"Authorization": "Basic s3cret"}, ReasonToken},
		{"no token", "GET", "localhost", "/api", nil, ReasonToken},
		{"token in the URL", "GET", "localhost", "/api?token=s3cret", nil, ""},
		{"cookie", "GET", "localhost", "/api", map[string]string{"Cookie": TokenCookie + "=s3cret"}, ""},
		{"same origin", "POST", "localhost:1", "/api", map[string]string{"Cookie": TokenCookie + "=s3cret", "Origin": "http://localhost:1", "Sec-Fetch-Site": "same-origin"}, ""},
		{"other origin POST", "POST", "localhost:1", "/api", map[string]string{"Cookie": TokenCookie + "=s3cret", "Origin": "http://localhost:2"}, ReasonCrossSite},
		{"same-site GET", "GET", "localhost:1", "/api", map[string]string{"Cookie": TokenCookie + "=s3cret", "Sec-Fetch-Site": "same-site"}, ReasonCrossSite},
		{"cross-site link to a public page", "GET", "localhost:1", "/", map[string]string{"Cookie": TokenCookie + "=s3cret", "Sec-Fetch-Site": "cross-site"}, ""},
		{"cross-site POST to a public page", "POST", "localhost:1", "/", map[string]string{"Cookie": TokenCookie + "=s3cret", "Sec-Fetch-Site": "cross-site"}, ReasonCrossSite},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			var got Reason
			cfg := cfg
			cfg.Refused = func(_ *http.Request, why Reason) { got = why }
			w := httptest.NewRecorder()
			Handler(cfg, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, r)
			if got != tt.want {
				t.Errorf("refused %q (status %d), want %q", got, w.Code, tt.want)
			}
			if w.Header().Get("X-Frame-Options") != "DENY" {
				t.Error("no X-Frame-Options")
			}
		})
	}
}
