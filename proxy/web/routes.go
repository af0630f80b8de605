package web

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy/capage"
)

// The page is plain HTML, CSS and one JavaScript module, embedded: no
// build step, no CDN, nothing fetched from elsewhere (the laptop may be
// offline, and a diagnostic page should not call out).
//
//go:embed ui
var uiFiles embed.FS

var indexPage = template.Must(template.ParseFS(uiFiles, "ui/index.html"))

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(uiFiles, "ui")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /api/records", s.handleRecords)
	mux.HandleFunc("GET /api/rows", s.handleRows)
	mux.HandleFunc("GET /api/conn", s.handleConn)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("GET /api/summary", s.handleSummary)
	mux.HandleFunc("GET /api/diff", s.handleDiff)
	mux.HandleFunc("GET /api/status", s.handleStatus)
	mux.HandleFunc("GET /api/upstream/stats", s.handleUpstreamStats)
	mux.HandleFunc("POST /api/upstream/flush", s.handleUpstreamFlush)
	mux.HandleFunc("GET /api/passthrough", s.handlePassthrough)
	mux.HandleFunc("POST /api/passthrough/reset", s.handlePassthroughReset)
	mux.HandleFunc("GET /api/client/ticket-keys", s.handleTicketKeys)
	mux.HandleFunc("POST /api/client/ticket-keys/rotate", s.handleRotateTicketKeys)
	mux.Handle("GET /metrics", s.metrics.handlerHTTP)
	mux.Handle("GET /ca/{file}", capage.Files(s.cfg.CA))
	s.wireguardRoutes(mux)
	return s.guard(mux)
}

// indexData is what the page's template needs; everything else comes from
// the API.
type indexData struct {
	Source string
	CA     *certs.CA
	Files  []certs.Format
	Hints  []certs.Hint
	// WireGuard: the proxy serves WireGuard devices; the nav links their
	// page.
	WireGuard bool
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	d := indexData{Source: s.cfg.Source, CA: s.cfg.CA, WireGuard: s.cfg.WireGuard != nil}
	if s.cfg.CA != nil {
		d.Files = certs.Formats()
		d.Hints = certs.InstallHints(s.cfg.CA.CertFile())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	indexPage.Execute(w, d)
}
