package web

import (
	"net"
	"net/http"
	"strings"

	"github.com/tlsresume/tlsresume/proxy/guard"
)

// guard is what every request passes before the view answers it (package
// guard): Host must be localhost, an IP literal or the name the view
// listens on; the token, when there is one, on every request; and every
// request but a link to the page, its static files or the CA's files must
// come from the view's own page or from a script, GETs included: another
// site's page may neither change anything nor make the view build a
// replay or a report for it. Refusals are counted in /metrics.
func (s *Server) guard(next http.Handler) http.Handler {
	var names []string
	if h, _, err := net.SplitHostPort(s.cfg.Addr); err == nil && h != "" {
		names = append(names, h)
	}
	return guard.Handler(guard.Config{
		Names:  names,
		Token:  s.cfg.Token,
		Public: publicPath,
		Refused: func(r *http.Request, why guard.Reason) {
			s.metrics.refuse(string(why))
			s.cfg.Log.Warn().Str("client", r.RemoteAddr).Str("path", r.URL.Path).Str("reason", string(why)).Msg("refuse live view request")
		},
	}, next)
}

// publicPath: what a link from anywhere may open. Everything else (the
// API, /metrics) answers the view's own page and scripts only.
func publicPath(p string) bool {
	return p == "/" || strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/ca/")
}
