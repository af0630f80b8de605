package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// ticketKeyLifetime: a key is kept this long after it stops encrypting, as
// long as crypto/tls accepts a ticket (maxSessionTicketLifetime, 7 days,
// crypto/tls/common.go).
const ticketKeyLifetime = 7 * 24 * time.Hour

// MinTicketRotation is the shortest Config.TicketRotation accepted. Each
// rotation writes the key file and adds a key that is kept for days: at
// 1ms, a rotation loop took a core and wrote 330 keys a second.
const MinTicketRotation = time.Minute

// maxTicketKeys caps the keys kept, newest first: a rotation beyond it
// drops the oldest key before its lifetime is over, so tickets issued under
// that key no longer resume. 256 keeps every key of hourly rotation for the
// whole lifetime (169); rotating every minute keeps about 4 hours of keys.
// Rotations by hand (the API, --rotate-ticket-keys) are capped too.
const maxTicketKeys = 256

// TicketKeys holds the session-ticket keys tlsresume issues client tickets
// under, shared by every client connection (tls.Config.SetSessionTicketKeys)
// and persisted so a device keeps resuming across proxy restarts.
type TicketKeys struct {
	mu      sync.Mutex
	path    string // "" keeps keys in memory only
	keys    []ticketKey
	current string // keyID of keys[0], once asked; "" after a change
}

type ticketKey struct {
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// LoadTicketKeys reads the keys at path, creating the file (0600) with a
// fresh key when it does not exist. An empty path keeps keys in memory.
func LoadTicketKeys(path string, now time.Time) (*TicketKeys, error) {
	t := &TicketKeys{path: path}
	if path != "" {
		b, err := readSecret(path)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &t.keys); err != nil {
				return nil, fmt.Errorf("proxy: ticket keys %s are corrupt (%v): remove the file to start with new keys (clients will do one full handshake)", path, err)
			}
			for _, k := range t.keys {
				if len(k.Key) != 32 {
					return nil, fmt.Errorf("proxy: ticket keys %s hold a %d-byte key, want 32: remove the file to start with new keys", path, len(k.Key))
				}
			}
		case !os.IsNotExist(err):
			return nil, fmt.Errorf("proxy: reading ticket keys: %w", err)
		}
	}
	if len(t.keys) > maxTicketKeys { // written by a tlsresume without the cap; newest first
		t.keys = t.keys[:maxTicketKeys:maxTicketKeys]
	}
	if len(t.keys) == 0 {
		if err := t.Rotate(now); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// readSecret reads a file of secrets, refusing one that other users may
// open (as the CA key and the upstream cache file are refused): whoever
// holds the ticket keys can decrypt every recorded client session.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if mode := fi.Mode().Perm(); runtime.GOOS != "windows" && mode&0o077 != 0 {
		return nil, fmt.Errorf("ticket keys %s are accessible by other users (mode %04o); run: chmod 600 %s, and --forget-ticket-keys if they may have been copied", path, mode, path)
	}
	return io.ReadAll(f)
}

// Keys returns the keys for tls.Config.SetSessionTicketKeys: the newest
// first (it encrypts), all of them decrypt.
func (t *TicketKeys) Keys() [][32]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][32]byte, len(t.keys))
	for i, k := range t.keys {
		copy(out[i][:], k.Key)
	}
	return out
}

// KeyInfo describes one ticket key without its secret.
type KeyInfo struct {
	ID      string    `json:"id"` // the first 4 bytes of the key's SHA-256, in hex
	Created time.Time `json:"created"`
	Current bool      `json:"current"` // it encrypts new tickets; the others only decrypt
}

// Info lists the keys, the current one first.
func (t *TicketKeys) Info() []KeyInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]KeyInfo, len(t.keys))
	for i, k := range t.keys {
		out[i] = KeyInfo{ID: keyID(k.Key), Created: k.Created, Current: i == 0}
	}
	return out
}

// currentID is the id of the key that encrypts new tickets.
func (t *TicketKeys) currentID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current == "" && len(t.keys) > 0 {
		t.current = keyID(t.keys[0].Key)
	}
	return t.current
}

// created returns when the key with id was created, if it is still held.
func (t *TicketKeys) created(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.keys {
		if keyID(k.Key) == id {
			return k.Created, true
		}
	}
	return time.Time{}, false
}

// keyID names a key without revealing it.
func keyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// Newest returns when the current encrypting key was created.
func (t *TicketKeys) Newest() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[0].Created
}

// Forget replaces every key with a new one and saves the set: every ticket
// issued before no longer decrypts, as after a server lost its keys.
func (t *TicketKeys) Forget(now time.Time) error {
	t.mu.Lock()
	t.keys = nil
	t.mu.Unlock()
	return t.Rotate(now)
}

// Rotate adds a new encrypting key, drops keys older than the ticket
// lifetime and, beyond maxTicketKeys, the oldest ones, and saves the set.
func (t *TicketKeys) Rotate(now time.Time) error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return fmt.Errorf("proxy: new ticket key: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := []ticketKey{{Key: k, Created: now}}
	for _, old := range t.keys {
		if len(keys) < maxTicketKeys && now.Sub(old.Created) < ticketKeyLifetime {
			keys = append(keys, old)
		}
	}
	t.keys, t.current = keys, ""
	return t.save()
}

func (t *TicketKeys) save() error {
	if t.path == "" {
		return nil
	}
	b, err := json.Marshal(t.keys)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(t.path), ".ticket-keys-*")
	if err != nil {
		return fmt.Errorf("proxy: saving ticket keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(b)
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), t.path)
		}
	}
	if err != nil {
		return fmt.Errorf("proxy: saving ticket keys: %w", err)
	}
	return nil
}
