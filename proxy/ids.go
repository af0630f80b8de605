package proxy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// Connection ids are "c" and a number that keeps counting across runs that
// share a state directory (Config.IDFile), as ticket keys and upstream
// sessions do: a record's ticket_from or session_from then never names a
// connection of an earlier run by a number this run reuses. The file holds
// the highest number reserved; numbers are reserved in blocks, so a run
// writes it once per idBlock connections, and a run that was killed
// leaves at most a gap.
const idBlock = 4096

type idSeq struct {
	file  string
	n     atomic.Uint64 // the last number handed out
	limit atomic.Uint64 // the highest number reserved in the file
	mu    sync.Mutex    // serialises reservations
	warn  func(error)   // hears a failed reservation, once
	err   error         // the first failed reservation
}

// loadIDs reads the highest number reserved by earlier runs; nothing is
// written until the first connection.
func loadIDs(file string) (*idSeq, error) {
	s := &idSeq{file: file}
	if file == "" {
		s.limit.Store(^uint64(0))
		return s, nil
	}
	b, err := os.ReadFile(file)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("proxy: reading connection ids: %w", err)
	default:
		last, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("proxy: connection ids %s: %q is not a number (remove the file to count from c1 again)", file, b)
		}
		s.n.Store(last)
		s.limit.Store(last)
	}
	return s, nil
}

func (s *idSeq) next() string {
	n := s.n.Add(1)
	if n > s.limit.Load() {
		s.reserve(n)
	}
	return "c" + strconv.FormatUint(n, 10)
}

// reserve writes a new limit past n. When it cannot be written the ids
// still count on; the next run may then reuse some (the error is kept).
func (s *idSeq) reserve(n uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= s.limit.Load() {
		return
	}
	limit := n + idBlock
	if err := upstream.WriteFileAtomic(s.file, []byte(strconv.FormatUint(limit, 10)+"\n")); err != nil && s.err == nil {
		s.err = err
		if s.warn != nil {
			s.warn(err)
		}
	}
	s.limit.Store(limit)
}
