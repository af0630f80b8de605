package web

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// tokenCookie keeps a browser's token after its first visit.
const tokenCookie = "tlsresume_token"

// guard is what every request passes before the view answers it, as
// caddy's admin API does (admin.go, checkHost and enforce_origin):
//   - Host must be localhost, an IP literal or the name the view listens
//     on: a page of another site whose name an attacker resolves to
//     127.0.0.1 (DNS rebinding; mitmweb fixed exactly this in 4.0.4) is
//     refused;
//   - the token, when there is one (mitmweb 11.1.2 added one), on every
//     request: ?token= (which sets a cookie), the cookie, or a bearer header;
//   - a request that changes state must be a POST from the view's own
//     origin, never from another site's page (CSRF).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		if !s.allowedHost(r.Host) {
			httpError(w, "refused: Host "+r.Host+" is not this view's address, localhost or an IP address (DNS rebinding?)", http.StatusMisdirectedRequest)
			return
		}
		if s.cfg.Token != "" && !s.tokenOK(w, r) {
			httpError(w, "this view needs its token: open the URL tlsresume printed at start (…/?token=…)", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			httpError(w, "refused: a request that changes something must come from this view's own page", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHost: localhost, an IP literal, or the host of the address the
// view was told to listen on (a name such as laptop.local).
func (s *Server) allowedHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if h, _, err := net.SplitHostPort(s.cfg.Addr); err == nil && h != "" && strings.EqualFold(h, host) {
		return true
	}
	return false
}

// tokenOK checks the request's token and, when it came in the URL, keeps
// it in a cookie for the page's own requests.
func (s *Server) tokenOK(w http.ResponseWriter, r *http.Request) bool {
	want := []byte(s.cfg.Token)
	eq := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	if q := r.URL.Query().Get("token"); q != "" && eq(q) {
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.cfg.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && eq(c.Value) {
		return true
	}
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(b) {
		return true
	}
	return false
}

// sameOrigin: a browser names the page a request comes from (Origin, and
// Sec-Fetch-Site); it must be this view. A script (curl) sends neither.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
