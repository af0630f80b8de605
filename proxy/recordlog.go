package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/inspect"
)

// RecordLog appends records to a JSONL file, one object per line.
//
// Durability: every record is written as soon as its connection's close
// event reaches the log, with the records queued behind it, in one write
// system call of complete lines (a group commit: no timer, no batch
// window). A kill -9 therefore loses at most the records still in the
// event queue and never leaves half a line (a write to a regular file
// completes or does not start before the signal is taken). The data is in
// the kernel's page cache, not fsync'd: it survives the process, not a
// power cut. A file that does not end in a newline when it is opened (a
// write cut short by a full disk) gets one, and Repaired says so.
type RecordLog struct {
	mu  sync.Mutex
	f   *os.File
	buf bytes.Buffer // complete lines not yet written
	enc *json.Encoder
	err error // the first write error

	// Repaired: the file ended in a partial line when opened; a newline
	// was appended so the next record starts a line of its own.
	Repaired bool

	unwritten atomic.Uint64 // records that could not be written
}

// maxBatch bounds the records one write carries.
const maxBatch = 512

// OpenRecordLog opens path for appending (created 0600: records hold
// session IDs and fingerprints of the user's devices).
func OpenRecordLog(path string) (*RecordLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) // a device or a FIFO
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: opening the record log: %w", err)
	}
	l := &RecordLog{f: f}
	l.enc = json.NewEncoder(&l.buf)
	l.enc.SetEscapeHTML(false)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return nil, fmt.Errorf("proxy: repairing the record log's last line: %w", err)
			}
			l.Repaired = true
		}
	}
	return l, nil
}

// Write appends one record now, in one write.
func (l *RecordLog) Write(r *inspect.ConnRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(r)
	return l.commit()
}

func (l *RecordLog) add(r *inspect.ConnRecord) {
	if err := l.enc.Encode(r); err != nil {
		// Not a write error: a record that cannot be encoded (it holds
		// nothing that can fail today). It is counted as unwritten.
		l.unwritten.Add(1)
	}
}

// commit writes the buffered lines in one write; lines a failed write
// did not take are counted as unwritten.
func (l *RecordLog) commit() error {
	if l.buf.Len() == 0 {
		return nil
	}
	b := l.buf.Bytes()
	n, err := l.f.Write(b)
	if err != nil {
		l.unwritten.Add(uint64(bytes.Count(b[n:], []byte{'\n'})))
		if l.err == nil {
			l.err = err
		}
	}
	l.buf.Reset()
	return err
}

// Unwritten is how many records could not be written.
func (l *RecordLog) Unwritten() uint64 { return l.unwritten.Load() }

// Close closes the file, and reports the first write error.
func (l *RecordLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commit()
	if err := l.f.Close(); l.err == nil {
		l.err = err
	}
	if l.err != nil && l.unwritten.Load() > 0 {
		return fmt.Errorf("%d records could not be written: %w", l.unwritten.Load(), l.err)
	}
	return l.err
}

// Follow writes the close event of every connection that events carries,
// until the channel is closed (Server.Shutdown closes it after the last
// record): each one at once, with whatever queued behind it in the same
// write. Records the subscription lost (it fell behind) and records that
// could not be written are said on the console, at most once a second.
func (l *RecordLog) Follow(events <-chan inspect.Event, log zerolog.Logger) {
	var lost uint64
	var warned, failed time.Time
	for ev := range events {
		l.mu.Lock()
		n := 0
		for {
			if ev.Dropped > lost && time.Since(warned) >= time.Second {
				log.Warn().Uint64("lost", ev.Dropped).Msg("the record log fell behind: records lost")
				lost, warned = ev.Dropped, time.Now()
			}
			if ev.Kind == inspect.EventClose {
				l.add(ev.Record)
				n++
			}
			if n >= maxBatch {
				break
			}
			var ok bool
			select {
			case ev, ok = <-events:
			default:
			}
			if !ok {
				break
			}
		}
		err := l.commit()
		l.mu.Unlock()
		if err != nil && time.Since(failed) >= time.Second {
			log.Error().Err(err).Uint64("unwritten", l.Unwritten()).Msg("the record log: records could not be written")
			failed = time.Now()
		}
	}
}
