package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// emit hands a finished record to the configured sink and logs one console
// line for it.
func (s *Server) emit(r *ConnRecord) {
	if s.cfg.Records != nil {
		s.cfg.Records(r)
	}
	ev := s.cfg.Log.Info()
	if r.Verdict.Client == CodeClientHandshakeFailed || r.Verdict.Code == CodeUpstreamFailed || r.Error != "" {
		ev = s.cfg.Log.Warn()
	}
	ev = ev.Str("conn_id", r.ID).Str("client", r.ClientAddr).Str("target", r.Target).Str("verdict", r.Verdict.Code)
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
	if r.Error != "" {
		ev = ev.Str("error", r.Error)
	}
	who := r.ClientAddr
	if r.UserAgent != "" {
		// "curl/7.88.1 (127.0.0.1:41234)": the program tells more than the port.
		who = fmt.Sprintf("%s (%s)", firstWord(r.UserAgent), r.ClientAddr)
	}
	ev.Msg(fmt.Sprintf("%s → %s  %s", who, r.Target, r.Verdict.Text))
}

// flushDelay bounds how long a finished record may wait in memory before
// it is written: records are batched, one write per burst rather than one
// system call per connection.
const flushDelay = 200 * time.Millisecond

// firstWord is a User-Agent's product token, e.g. "curl/7.88.1" or
// "MyApp/1.0" from "MyApp/1.0 CFNetwork/1494 Darwin/23.0".
func firstWord(ua string) string {
	if i := strings.IndexByte(ua, ' '); i > 0 {
		return ua[:i]
	}
	return ua
}

// RecordLog appends records to a JSONL file, one object per line. A record
// reaches the file within flushDelay of its connection's end, and Close
// (on shutdown) writes the rest.
type RecordLog struct {
	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	enc   *json.Encoder
	err   error
	timer *time.Timer // pending flush, nil when none
}

// OpenRecordLog opens path for appending (created 0600: records hold
// session IDs and fingerprints of the user's devices).
func OpenRecordLog(path string) (*RecordLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("proxy: opening the record log: %w", err)
	}
	l := &RecordLog{f: f, w: bufio.NewWriterSize(f, 64<<10)}
	l.enc = json.NewEncoder(l.w)
	l.enc.SetEscapeHTML(false)
	return l, nil
}

// Write appends one record; it reaches the file within flushDelay.
func (l *RecordLog) Write(r *ConnRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	if err := l.enc.Encode(r); err != nil {
		l.err = err
		return
	}
	if l.timer == nil {
		l.timer = time.AfterFunc(flushDelay, l.flush)
	}
}

func (l *RecordLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = nil
	if err := l.w.Flush(); l.err == nil {
		l.err = err
	}
}

// Close flushes and closes the file, and reports the first write error.
func (l *RecordLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	if err := l.w.Flush(); l.err == nil {
		l.err = err
	}
	if err := l.f.Close(); l.err == nil {
		l.err = err
	}
	return l.err
}
