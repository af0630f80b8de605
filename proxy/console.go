package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/inspect"
)

// ConsoleWriter is zerolog's console writer as tlsresume's console uses it
// for people (--log-json writes JSON instead), made safe for a terminal:
// lines carry what peers chose (SNI, User-Agent) and error texts that embed
// it (x509's "certificate is valid for a.test, not ESC]0;…"), so the
// message, every field name and every field value, errors included, is
// shown through inspect.Printable. (zerolog itself quotes a string value
// holding anything but printable ASCII, with Go's escapes; it prints the
// message, and other values' JSON, as they are. Bytes outside UTF-8 are
// U+FFFD by then: the writer decodes zerolog's JSON.)
func ConsoleWriter(out io.Writer, noColor bool) zerolog.ConsoleWriter {
	noColor = noColor || os.Getenv("NO_COLOR") != "" // as zerolog's own colours do
	return zerolog.ConsoleWriter{
		Out: out, NoColor: noColor, TimeFormat: "15:04:05",
		FormatPrepare:    printableEvent,
		FormatFieldValue: func(v any) string { return inspect.Printable(consoleText(v)) },
		FormatErrFieldValue: func(v any) string {
			s := inspect.Printable(consoleText(v))
			if noColor {
				return s
			}
			return "\x1b[31m\x1b[1m" + s + "\x1b[0m\x1b[0m" // red and bold, as zerolog shows errors
		},
	}
}

// printableEvent shows a decoded event's message and field names through
// inspect.Printable, and drops the fields of a record's line, which its
// message says for people; the writer's own formatters then print them as
// usual (the message in bold).
func printableEvent(evt map[string]any) error {
	if msg, ok := evt[zerolog.MessageFieldName].(string); ok {
		evt[zerolog.MessageFieldName] = inspect.Printable(msg)
	}
	if _, ok := evt["verdict"]; ok {
		// A record's line: its message says it all.
		for _, k := range recordFields {
			delete(evt, k)
		}
	}
	var renamed []string
	for k := range evt {
		if inspect.Printable(k) != k {
			renamed = append(renamed, k)
		}
	}
	for _, k := range renamed {
		evt[inspect.Printable(k)] = evt[k]
		delete(evt, k)
	}
	return nil
}

// consoleText is a value as the console writer hands it to a formatter: a
// string (quoted by zerolog when it needed it), a JSON number, or the JSON
// of anything else.
func consoleText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return string(v)
	case []byte:
		return string(v)
	}
	return fmt.Sprintf("%s", v)
}

// recordFields are the fields of a record's line (logRecord): for
// machines (--log-json), while the console shows the line's message alone,
// which says the same for people (printableEvent drops them).
var recordFields = []string{"conn_id", "client", "target", "sni", "program", "ja4", "offered", "resumed", "upstream_resumed",
	"verdict", "fix", "mirrored_from", "mirror_mismatch", "error", "transport", "after_quic", "quic_fallback"}

// logRecord logs one line for a finished record: recordLine for people,
// its facts in fields for machines.
func (s *Server) logRecord(r *inspect.ConnRecord) {
	ev := s.cfg.Log.Info()
	if r.Verdict.Client == inspect.CodeClientHandshakeFailed || r.Verdict.Code == inspect.CodeUpstreamFailed || r.Error != "" || r.Verdict.Fix != "" {
		ev = s.cfg.Log.Warn()
	}
	if !ev.Enabled() {
		return
	}
	ev = ev.Str("conn_id", r.ID).Str("client", r.ClientAddr).Str("target", r.Target).Str("verdict", string(r.Verdict.Code))
	if r.Transport == inspect.TransportNameQUIC {
		ev = ev.Str("transport", r.Transport)
	}
	if r.AfterQUIC != "" {
		ev = ev.Str("after_quic", r.AfterQUIC)
	}
	if fb := r.QUICFallback; fb != nil && fb.TCPConn != "" {
		ev = ev.Str("quic_fallback", fb.TCPConn)
	}
	if r.SNI != "" {
		ev = ev.Str("sni", r.SNI)
	}
	program := inspect.ProgramName(r.UserAgent)
	if program != "" {
		ev = ev.Str("program", program)
	}
	if r.ClientHello != nil {
		ev = ev.Str("ja4", r.ClientHello.JA4).Str("offered", string(r.ClientHello.Attempt))
	}
	if r.ClientLeg != nil {
		ev = ev.Bool("resumed", r.ClientLeg.Resumed)
	}
	if r.UpstreamLeg != nil {
		ev = ev.Bool("upstream_resumed", r.UpstreamLeg.Resumed)
	}
	if r.Verdict.Fix != "" {
		ev = ev.Str("fix", r.Verdict.Fix)
	}
	if m := r.Mirrored; m != nil && len(m.Mismatch) > 0 {
		ev = ev.Str("mirrored_from", m.From).Strs("mirror_mismatch", m.Mismatch)
	}
	if r.Error != "" {
		ev = ev.Str("error", r.Error)
	}
	ev.Msg(recordLine(r, program))
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
