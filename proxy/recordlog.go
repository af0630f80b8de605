package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/inspect"
)

// flushDelay bounds how long a finished record may wait in memory before
// it is written: records are batched, one write per burst rather than one
// system call per connection.
const flushDelay = 200 * time.Millisecond

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
func (l *RecordLog) Write(r *inspect.ConnRecord) {
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

// Follow writes the close event of every connection that events carries,
// until the channel is closed (Server.Shutdown closes it after the last
// record). Events the subscription lost (it fell behind) are logged as a
// warning, at most once a second.
func (l *RecordLog) Follow(events <-chan inspect.Event, log zerolog.Logger) {
	var lost uint64
	var warned time.Time
	for ev := range events {
		if ev.Dropped > lost && time.Since(warned) >= time.Second {
			log.Warn().Uint64("lost", ev.Dropped).Msg("the record log fell behind: records lost")
			lost, warned = ev.Dropped, time.Now()
		}
		if ev.Kind == inspect.EventClose {
			l.Write(ev.Record)
		}
	}
}
