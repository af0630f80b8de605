package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// ticketKeyLifetime: a key is kept this long after it stops encrypting, as
// long as crypto/tls accepts a ticket (maxSessionTicketLifetime, 7 days,
// crypto/tls/common.go).
const ticketKeyLifetime = 7 * 24 * time.Hour

// TicketKeys holds the session-ticket keys tlsresume issues client tickets
// under, shared by every client connection (tls.Config.SetSessionTicketKeys)
// and persisted so a device keeps resuming across proxy restarts.
type TicketKeys struct {
	mu   sync.Mutex
	path string // "" keeps keys in memory only
	keys []ticketKey
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
		b, err := os.ReadFile(path)
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
	if len(t.keys) == 0 {
		if err := t.Rotate(now); err != nil {
			return nil, err
		}
	}
	return t, nil
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

// Newest returns when the current encrypting key was created.
func (t *TicketKeys) Newest() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[0].Created
}

// Rotate adds a new encrypting key, drops keys older than the ticket
// lifetime, and saves the set.
func (t *TicketKeys) Rotate(now time.Time) error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return fmt.Errorf("proxy: new ticket key: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := []ticketKey{{Key: k, Created: now}}
	for _, old := range t.keys {
		if now.Sub(old.Created) < ticketKeyLifetime {
			keys = append(keys, old)
		}
	}
	t.keys = keys
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

// stampPrefix marks tlsresume's lineage stamp in SessionState.Extra, which
// crypto/tls carries in the ticket but ignores (crypto/tls/ticket.go).
var stampPrefix = []byte("tlsresume/1\x00")

// stamp encodes which connection issued a ticket, and when.
func stamp(connID string, issued time.Time) []byte {
	b := append([]byte(nil), stampPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(issued.UnixNano()))
	return append(b, connID...)
}

// readStamp finds tlsresume's stamp among a session's Extra values.
func readStamp(extra [][]byte) (connID string, issued time.Time, ok bool) {
	for _, e := range extra {
		if bytes.HasPrefix(e, stampPrefix) && len(e) >= len(stampPrefix)+8 {
			rest := e[len(stampPrefix):]
			ns := int64(binary.BigEndian.Uint64(rest))
			return string(rest[8:]), time.Unix(0, ns), true
		}
	}
	return "", time.Time{}, false
}

// lineage hooks a per-connection tls.Config's ticket wrapping so that the
// client leg records what it issued and what the client brought back.
type lineage struct {
	connID string
	now    func() time.Time
	leg    *inspect.ClientLeg
}

// install sets cfg.WrapSession and cfg.UnwrapSession. cfg must be the
// per-connection clone: the hooks encrypt with cfg's (shared) ticket keys.
func (l *lineage) install(cfg *tls.Config) {
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, stamp(l.connID, l.now()))
		l.leg.TicketsSent++
		return cfg.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		if len(identity) == 0 {
			// crypto/tls asks about an empty TLS 1.2 session_ticket too
			// (handshake_server.go): the client asked for a ticket, it did
			// not offer one.
			return nil, nil
		}
		ss, err := cfg.DecryptTicket(identity, cs)
		if err != nil {
			return nil, err
		}
		if l.leg.Ticket == inspect.TicketOurs {
			return ss, nil // an earlier identity of this hello already matched
		}
		if ss == nil {
			// DecryptTicket returns nil, nil for a ticket under an unknown key.
			l.leg.Ticket = inspect.TicketNotOurs
			return nil, nil
		}
		from, issued, ok := readStamp(ss.Extra)
		if !ok {
			l.leg.Ticket = inspect.TicketNotOurs
			return ss, nil
		}
		l.leg.TicketFrom = from
		l.leg.TicketAgeMS = l.now().Sub(issued).Milliseconds()
		l.leg.Ticket = inspect.TicketOurs
		if l.now().Sub(issued) > ticketKeyLifetime {
			l.leg.Ticket = inspect.TicketExpired
		}
		return ss, nil
	}
}
