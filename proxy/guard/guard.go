// Package guard is the check every request to one of tlsresume's own HTTP
// endpoints passes before it is answered: the live view and its API
// (proxy/web) and the magic host http://tlsresume.proxy/ (package proxy).
// Both are local control pages that a browser can reach, so both refuse,
// as caddy's admin API does (admin.go: checkHost, enforce_origin):
//
//   - a Host that is not localhost, an IP literal or one of the site's own
//     names: a page of another site whose name an attacker resolves to
//     127.0.0.1 (DNS rebinding; mitmweb fixed exactly this in 4.0.4) sends
//     its own name;
//   - a request without the token, when there is one (mitmweb 11.1.2 added
//     one): ?token= (which sets a cookie), the cookie, or a bearer header;
//   - a request from another site's page (CSRF, and reads that cost the
//     server): a browser names the page a request comes from in Origin and
//     Sec-Fetch-Site. A POST must come from the site's own page; so must a
//     GET, except of the paths Config.Public names (the page itself, its
//     static files, the CA's files), which a link from anywhere may open.
//     A script (curl) sends neither header and is not refused.
//
// Every answer carries headers that keep the site out of other sites'
// frames and stop browsers guessing content types.
package guard

import (
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TokenCookie keeps a browser's token after its first visit.
const TokenCookie = "tlsresume_token"

// Reason says why a request was refused; the values are a small fixed set,
// fit for a metric's label.
type Reason string

const (
	ReasonHost      Reason = "host"       // Host is not the site's (DNS rebinding?)
	ReasonToken     Reason = "token"      // the token is missing or wrong
	ReasonCrossSite Reason = "cross_site" // another site's page sent it (Origin, Sec-Fetch-Site)
)

// Config says what a site accepts. The zero value accepts localhost and IP
// literals as Host, needs no token, and lets only the site's own pages and
// scripts make any request.
type Config struct {
	// Names are host names accepted in Host besides localhost and IP
	// literals, compared without case: the name a view was told to listen
	// on (laptop.local), or tlsresume.proxy. Default: none.
	Names []string
	// Token, when set, is required on every request. Default: none.
	Token string
	// Public reports whether a GET or HEAD of path may come from any page
	// (a link from elsewhere). Default: no path may.
	Public func(path string) bool
	// Refused is told of each refused request and why, to count or log it.
	// Default: nothing is told.
	Refused func(r *http.Request, why Reason)
}

// Handler returns next behind the guard cfg describes.
func Handler(cfg Config, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w.Header())
		why, msg, code := cfg.check(w, r)
		if why == "" {
			next.ServeHTTP(w, r)
			return
		}
		if cfg.Refused != nil {
			cfg.Refused(r, why)
		}
		Error(w, msg, code)
	})
}

// check returns why r is refused, with the message and status to send, or
// "" when it may be answered.
func (cfg *Config) check(w http.ResponseWriter, r *http.Request) (Reason, string, int) {
	if !cfg.allowedHost(r.Host) {
		return ReasonHost, "refused: Host " + r.Host + " is not this site's name, localhost or an IP address (DNS rebinding?)", http.StatusMisdirectedRequest
	}
	if cfg.Token != "" && !cfg.tokenOK(w, r) {
		return ReasonToken, "this view needs its token: open the URL tlsresume printed at start (…/?token=…)", http.StatusUnauthorized
	}
	if SameOrigin(r) {
		return "", "", 0
	}
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if read && cfg.Public != nil && cfg.Public(r.URL.Path) {
		return "", "", 0
	}
	if !read {
		return ReasonCrossSite, "refused: a request that changes something must come from this site's own page", http.StatusForbidden
	}
	return ReasonCrossSite, "refused: another site's page may not read this (Origin or Sec-Fetch-Site names another site); open it from this site's own page, or from a script", http.StatusForbidden
}

// setHeaders: no framing (clickjacking), no content sniffing, no
// Referer (a token in the URL stays here), and only the site's own
// scripts, styles and images.
func setHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
}

// allowedHost: localhost, an IP literal, or one of cfg.Names. A browser
// sends the name in its address bar, so an IP literal or localhost can
// only come from a page the user opened by that address, never from an
// attacker's name rebound to a local address.
func (cfg *Config) allowedHost(hostport string) bool {
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
	for _, n := range cfg.Names {
		if n != "" && strings.EqualFold(strings.TrimSuffix(n, "."), host) {
			return true
		}
	}
	return false
}

// tokenOK checks the request's token and, when it came in the URL, keeps
// it in a cookie for the page's own requests.
func (cfg *Config) tokenOK(w http.ResponseWriter, r *http.Request) bool {
	want := []byte(cfg.Token)
	eq := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	if q := r.URL.Query().Get("token"); q != "" && eq(q) {
		http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: cfg.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return true
	}
	if c, err := r.Cookie(TokenCookie); err == nil && eq(c.Value) {
		return true
	}
	return eq(bearer(r.Header.Get("Authorization")))
}

// bearer is the credentials of an "Authorization: Bearer …" header, or ""
// for another scheme. The scheme is case-insensitive and may be followed
// by more than one space (RFC 9110 §11.1, §11.4; RFC 6750 §2.1).
func bearer(h string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

// SameOrigin reports whether r comes from the page of the site it is sent
// to, or from no page at all. A browser names the page a request comes
// from in Origin (on CORS requests and on every POST) and in Sec-Fetch-Site
// (on every request to a potentially trustworthy URL, which includes
// http://localhost and http://127.0.0.1); a script (curl) sends neither.
// "same-site" is refused: a page on another port of 127.0.0.1 is
// same-site, and is another site's page all the same.
func SameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// Error answers with a JSON error, {"error": msg}.
func Error(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
