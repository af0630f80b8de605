package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The cache file is one JSON object (internal; not a contract):
//
//	{
//	  "format":  "tlsresume-upstream-cache",
//	  "version": 1,
//	  "entries": [              // most recently used first
//	    {
//	      "key":       "sni|ip:port",
//	      "from":      "connID that stored the session",
//	      "stored_at": "RFC 3339 time, by the cache's clock",
//	      "ticket":    "base64: the session's identity, from ClientSessionState.ResumptionState",
//	      "state":     "base64: SessionState.Bytes(), restored with tls.ParseSessionState"
//	    }
//	  ]
//	}
//
// New fields may be added; a change that older readers would misread bumps
// version. The state encoding is Go's and may change between Go versions
// (ticket.go): a file from another Go may then fail to load, with an error
// naming the entry.
const (
	fileFormat  = "tlsresume-upstream-cache"
	fileVersion = 1
)

type cacheFile struct {
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Entries []fileEntry `json:"entries"`
}

type fileEntry struct {
	Key      string    `json:"key"`
	From     string    `json:"from"`
	StoredAt time.Time `json:"stored_at"`
	Ticket   []byte    `json:"ticket"`
	State    []byte    `json:"state"`
}

// Save writes the sessions younger than the TTL to the configured file,
// atomically (a temporary file in the same directory, synced, then renamed)
// and with mode 0600. It does nothing if no file is configured or the cache
// is disabled.
func (c *Cache) Save() error {
	if c.file == "" || c.disabled {
		return nil
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	data, err := encodeFile(c.snapshot())
	if err != nil {
		return fmt.Errorf("upstream: saving cache to %s: %w", c.file, err)
	}
	if err := WriteFileAtomic(c.file, data); err != nil {
		return fmt.Errorf("upstream: saving cache to %s: %w", c.file, err)
	}
	return nil
}

// encodeFile serialises entries in the order given.
func encodeFile(entries []entry) ([]byte, error) {
	f := cacheFile{Format: fileFormat, Version: fileVersion, Entries: make([]fileEntry, 0, len(entries))}
	for _, e := range entries {
		ticket, state, err := e.state.ResumptionState()
		if err != nil || state == nil {
			return nil, fmt.Errorf("session for %q: no resumption state (%v)", e.key, err)
		}
		b, err := state.Bytes()
		if err != nil {
			return nil, fmt.Errorf("encoding session for %q: %w", e.key, err)
		}
		f.Entries = append(f.Entries, fileEntry{Key: e.key, From: e.from, StoredAt: e.storedAt, Ticket: ticket, State: b})
	}
	return json.MarshalIndent(f, "", "\t")
}

// Autosave saves the cache to its file every interval in which it changed,
// until ctx is done, so a process that is killed loses at most interval of
// sessions (Save on shutdown still writes the rest). A burst of changes is
// one save. onErr hears failed saves.
func (c *Cache) Autosave(ctx context.Context, interval time.Duration, onErr func(error)) {
	if c.file == "" || c.disabled {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	saved := c.changes.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n := c.changes.Load(); n != saved {
			if err := c.Save(); err != nil {
				onErr(err)
				continue
			}
			saved = n
		}
	}
}

// WriteFileAtomic replaces path with data. os.CreateTemp makes the file 0600, so
// the secrets are never readable by others, even mid-write, and the rename
// gives path that mode whatever it had before. A crash leaves the old file or
// the new one, never a mix.
func WriteFileAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone after a successful rename; cleanup otherwise
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// load fills an empty cache from its file. A missing file is an empty cache.
func (c *Cache) load() error {
	f, err := os.Open(c.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("upstream: loading cache file: %w", err)
	}
	defer f.Close()
	// Check the mode of the file being read, not of whatever the path names
	// a moment later.
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upstream: loading cache file: %w", err)
	}
	if mode := fi.Mode().Perm(); checkModes() && mode&0o077 != 0 {
		return fmt.Errorf("upstream: cache file %s is accessible by other users (mode %04o) and holds session secrets; run: chmod 600 %s", c.file, mode, c.file)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("upstream: loading cache file: %w", err)
	}
	entries, err := decodeFile(data)
	if err != nil {
		return fmt.Errorf("upstream: loading cache file %s (move it aside to start with an empty cache): %w", c.file, err)
	}
	if len(entries) > c.size {
		entries = entries[:c.size] // keep the most recently used
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		c.byKey[e.key] = c.lru.PushFront(e)
	}
	return nil
}

// checkModes reports whether Unix permission bits mean anything here: on
// Windows Go reports synthetic modes (os package docs, "Chmod").
func checkModes() bool { return runtime.GOOS != "windows" && runtime.GOOS != "plan9" }

// decodeFile parses a cache file, most recently used entry first. Any bad
// entry fails the whole file, so nothing is silently lost.
func decodeFile(data []byte) ([]*entry, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("file is empty")
	}
	var f cacheFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("invalid JSON at offset %d: %w", syn.Offset, err)
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return nil, fmt.Errorf("field %q at offset %d: %w", typ.Field, typ.Offset, err)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid JSON at offset %d: data after the cache object", dec.InputOffset())
	}
	if f.Format != fileFormat {
		return nil, fmt.Errorf("format is %q, want %q: not a tlsresume upstream cache file", f.Format, fileFormat)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("format version %d is not supported (want %d)", f.Version, fileVersion)
	}
	entries := make([]*entry, 0, len(f.Entries))
	seen := make(map[string]bool, len(f.Entries))
	for i, fe := range f.Entries {
		e, err := decodeEntry(fe)
		if err != nil {
			return nil, fmt.Errorf("entry %d (key %q): %w", i, fe.Key, err)
		}
		if seen[e.key] {
			return nil, fmt.Errorf("entry %d (key %q): duplicate key", i, fe.Key)
		}
		seen[e.key] = true
		entries = append(entries, e)
	}
	return entries, nil
}

func decodeEntry(fe fileEntry) (*entry, error) {
	if !strings.Contains(fe.Key, "|") {
		return nil, errors.New(`key: want "sni|ip:port"`)
	}
	if fe.StoredAt.IsZero() {
		return nil, errors.New("stored_at: missing")
	}
	if len(fe.Ticket) == 0 {
		return nil, errors.New("ticket: missing")
	}
	facts, err := parseSessionFacts(fe.State)
	if err != nil {
		return nil, err
	}
	state, err := tls.ParseSessionState(fe.State)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	cs, err := tls.NewResumptionState(fe.Ticket, state)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &entry{key: fe.Key, state: cs, facts: facts, from: fe.From, storedAt: fe.StoredAt}, nil
}
