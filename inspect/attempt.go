package inspect

import "sync"

// AttemptOf says how a ClientHello tried to resume: AttemptPSK, AttemptTicket,
// AttemptSessionID or AttemptNone. issued reports whether the hello's
// session ID is one the same server issued earlier (see SessionHistory).
//
// A non-empty legacy session ID counts as an attempt only when that server
// issued it earlier: TLS 1.3 clients send a random 32-byte ID for middlebox
// compatibility (RFC 8446, Appendix D.4), and some TLS 1.2 clients send a
// random one too (Go's crypto/tls does, to detect ticket resumption as RFC
// 5077, Section 3.4 allows), so its presence alone proves nothing.
func AttemptOf(h *ClientHello, issued bool) Attempt {
	switch {
	case h.PreSharedKey:
		return AttemptPSK
	case h.SessionTicket && h.SessionTicketLen > 0:
		return AttemptTicket
	case len(h.SessionID) > 0 && issued:
		return AttemptSessionID
	}
	return AttemptNone
}

// SessionHistory remembers the session IDs that servers issued in TLS 1.2 and
// earlier ServerHellos, keyed by server address, so that a later ClientHello
// offering one is known to be a resumption attempt. It is bounded: the oldest
// entries are forgotten first. A nil *SessionHistory remembers nothing.
// It is safe for concurrent use.
type SessionHistory struct {
	mu    sync.Mutex
	max   int
	ids   map[string]struct{}
	order []string // insertion order, for eviction
	head  int
}

// NewSessionHistory returns a history holding at most max IDs (default 65536).
func NewSessionHistory(max int) *SessionHistory {
	if max <= 0 {
		max = 1 << 16
	}
	return &SessionHistory{max: max, ids: make(map[string]struct{})}
}

// Add records that server issued id. Empty IDs are ignored.
func (s *SessionHistory) Add(server string, id []byte) {
	if s == nil || len(id) == 0 {
		return
	}
	k := server + "\x00" + string(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[k]; ok {
		return
	}
	if len(s.order) < s.max {
		s.order = append(s.order, k)
	} else {
		delete(s.ids, s.order[s.head])
		s.order[s.head] = k
		s.head = (s.head + 1) % s.max
	}
	s.ids[k] = struct{}{}
}

// Has reports whether server issued id earlier.
func (s *SessionHistory) Has(server string, id []byte) bool {
	if s == nil || len(id) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[server+"\x00"+string(id)]
	return ok
}

var alertNames = map[byte]string{
	0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
	40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
	44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
	47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
	51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
	80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
	109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
	113: "bad_certificate_status_response", 115: "unknown_psk_identity",
	116: "certificate_required", 120: "no_application_protocol", 121: "ech_required",
}

// AlertName returns the RFC 8446 name of an alert description.
func AlertName(d byte) string {
	if n, ok := alertNames[d]; ok {
		return n
	}
	return "unknown"
}
