package proxy

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy/capage"
	"github.com/tlsresume/tlsresume/proxy/guard"
)

// MagicHost is the name a client browses to, through the proxy, to get the
// CA and see the proxy's state (like mitmproxy's mitm.it).
const MagicHost = "tlsresume.proxy"

// isMagic reports whether a request or CONNECT target names MagicHost.
func isMagic(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	return host == MagicHost
}

// magicHandler serves the CA download page, /stats and /flush, behind the
// live view's guard (package guard): Host must be tlsresume.proxy,
// localhost or an IP address (the proxy's own address opened in a
// browser), so a rebinding page cannot read /stats; /flush must be a POST
// from the magic host's own page or a script, never an auto-submitting
// form of another site; /stats answers the same, while the page and the
// CA's files may be opened from a link anywhere.
func (s *Server) magicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.magicIndex)
	mux.Handle("GET /ca/{file}", capage.Files(s.cfg.CA))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"upstream_cache": s.cfg.Upstream.Stats()})
	})
	mux.HandleFunc("POST /flush", func(w http.ResponseWriter, r *http.Request) {
		s.cfg.Upstream.Flush()
		s.cfg.Log.Info().Msg("flushed the upstream session cache")
		fmt.Fprintln(w, "upstream session cache flushed")
	})
	return guard.Handler(guard.Config{
		Names: []string{MagicHost},
		Public: func(path string) bool {
			return path == "/" || strings.HasPrefix(path, "/ca/")
		},
		Refused: func(r *http.Request, why guard.Reason) {
			s.cfg.Log.Warn().Str("client", r.RemoteAddr).Str("host", r.Host).Str("path", r.URL.Path).Str("reason", string(why)).Msg("refuse magic host request")
		},
	}, mux)
}

var magicPage = template.Must(template.New("page").Parse(`<!doctype html>
<meta charset="utf-8"><title>tlsresume</title>
<h1>tlsresume</h1>
{{if .CA}}<p>Trust this CA to let tlsresume see your TLS handshakes. SHA-256 fingerprint:<br><code>{{.CA.Fingerprint}}</code></p>
<ul>{{range .Formats}}<li><a href="/ca/{{.FileName}}">{{.FileName}}</a></li>{{end}}</ul>
{{range .Hints}}<h2>{{.Platform}}</h2><ul>{{range .Steps}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{else}}<p>No CA is configured.</p>{{end}}
<p><a href="/stats">upstream session cache statistics</a>; POST /flush empties it.</p>
`))

func (s *Server) magicIndex(w http.ResponseWriter, r *http.Request) {
	data := struct {
		CA      *certs.CA
		Formats []certs.Format
		Hints   []certs.Hint
	}{CA: s.cfg.CA}
	if s.cfg.CA != nil {
		data.Formats = certs.Formats()
		data.Hints = certs.InstallHints(s.cfg.CA.CertFile())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	magicPage.Execute(w, data)
}

// ServeMagic serves http://tlsresume.proxy/ (the CA download page, /stats,
// /flush: the same guard as ever) on c, a connection a source the proxy
// does not listen for accepted itself: a WireGuard device's connection to
// the tunnel's own address, which the tunnel's DNS gives for
// tlsresume.proxy. It returns when c is closed.
func (s *Server) ServeMagic(c net.Conn) {
	if !s.track(c) {
		c.Close()
		return
	}
	defer s.untrack(c)
	srv := &http.Server{Handler: s.magic, MaxHeaderBytes: maxHeaderBytes, ReadHeaderTimeout: s.cfg.ConnectTimeout,
		IdleTimeout: s.cfg.IdleTimeout, ErrorLog: s.httpSrv.ErrorLog}
	srv.Serve(&oneConnListener{c: c})
}

// serveMagicTLS answers https://tlsresume.proxy/ itself: no origin to dial.
// raw is the tracked client connection; read, what was read past the
// CONNECT request.
func (s *Server) serveMagicTLS(raw net.Conn, read []byte) {
	defer s.untrack(raw)
	leaf, err := s.cfg.Issuer.Leaf(MagicHost)
	if err != nil {
		raw.Close()
		return
	}
	tc := tls.Server(&replayConn{Conn: raw, pending: read}, &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"http/1.1"}})
	srv := &http.Server{Handler: s.magic, MaxHeaderBytes: maxHeaderBytes, ReadHeaderTimeout: s.cfg.ConnectTimeout, ErrorLog: s.httpSrv.ErrorLog}
	srv.Serve(&oneConnListener{c: tc})
}

// oneConnListener hands out one connection, then blocks until it closes.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	done := l.done
	l.mu.Unlock()
	var c net.Conn
	l.once.Do(func() { c = &closeNotifyConn{Conn: l.c, done: done} })
	if c != nil {
		return c, nil
	}
	<-done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

type closeNotifyConn struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (c *closeNotifyConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}
