package proxy

import (
	stdlog "log"
	"strings"

	"github.com/rs/zerolog"

	"fmt"

	"github.com/tlsresume/tlsresume/inspect"
)

// logRecord logs one console line for a finished record.
func (s *Server) logRecord(r *inspect.ConnRecord) {
	ev := s.cfg.Log.Info()
	if r.Verdict.Client == inspect.CodeClientHandshakeFailed || r.Verdict.Code == inspect.CodeUpstreamFailed || r.Error != "" {
		ev = s.cfg.Log.Warn()
	}
	ev = ev.Str("conn_id", r.ID).Str("client", r.ClientAddr).Str("target", r.Target).Str("verdict", string(r.Verdict.Code))
	if r.SNI != "" {
		ev = ev.Str("sni", r.SNI)
	}
	if r.ClientHello != nil {
		ev = ev.Str("ja4", r.ClientHello.JA4)
	}
	if r.ClientLeg != nil {
		ev = ev.Bool("resumed", r.ClientLeg.Resumed)
	}
	if r.UpstreamLeg != nil {
		ev = ev.Bool("upstream_resumed", r.UpstreamLeg.Resumed)
	}
	if m := r.Mirrored; m != nil && len(m.Mismatch) > 0 {
		// Answered early, and the origin then answered otherwise: rare,
		// and what the client saw is not what the origin chose.
		ev = ev.Str("mirrored_from", m.From).Strs("mirror_mismatch", m.Mismatch)
	}
	if r.Error != "" {
		ev = ev.Str("error", r.Error)
	}
	who := r.ClientAddr
	if r.UserAgent != "" {
		// "curl/7.88.1 (127.0.0.1:41234)": the program tells more than the port.
		who = fmt.Sprintf("%s (%s)", inspect.ProgramName(r.UserAgent), r.ClientAddr)
	}
	ev.Msg(fmt.Sprintf("%s → %s  %s", who, r.Target, r.Verdict.Text))
}

// httpErrorLog sends what net/http would print (accept errors, panics in
// handlers) to the console logger.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(lineWriter{log.With().Str("from", "net/http").Logger()}, "", 0)
}

// lineWriter logs each line written to it as a warning.
type lineWriter struct{ log zerolog.Logger }

func (w lineWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
