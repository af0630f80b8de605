package upstream

import (
	"crypto/tls"
	"fmt"

	"github.com/tlsresume/tlsresume/inspect"
)

// sessionFacts are the fields of a client session that the cache reports or
// needs, read from the session's encoding because crypto/tls exports none of
// them.
type sessionFacts struct {
	version     uint16 // TLS version the session was made with
	cipherSuite uint16
	createdAt   uint64 // seconds since the Unix epoch; when the client received the ticket
	useBy       uint64 // seconds since the Unix epoch; TLS 1.3 only: createdAt + the server's ticket_lifetime
}

// offered names what crypto/tls puts in the ClientHello for a session of
// this version: a pre_shared_key identity in TLS 1.3 (RFC 8446, Section
// 4.2.11), a SessionTicket extension before (RFC 5077, Section 3.1).
func (f sessionFacts) offered() inspect.Attempt {
	switch {
	case f.version >= tls.VersionTLS13:
		return inspect.AttemptPSK
	case f.version != 0:
		return inspect.AttemptTicket
	default:
		return inspect.AttemptNone
	}
}

// sessionFormatError says where a session encoding could not be read. It
// carries no "upstream: " prefix because it only reaches callers wrapped in
// an error that has one.
type sessionFormatError struct {
	Offset int    // byte offset at which Field starts
	Field  string // the SessionState field being read
	Reason string
}

func (e *sessionFormatError) Error() string {
	return fmt.Sprintf("session state: %s at offset %d: %s", e.Field, e.Offset, e.Reason)
}

// sessionReader reads big-endian integers and length-prefixed vectors,
// keeping the offset for errors.
type sessionReader struct {
	b   []byte
	off int
	err error
}

func (r *sessionReader) fail(field, reason string) {
	if r.err == nil {
		r.err = &sessionFormatError{Offset: r.off, Field: field, Reason: reason}
	}
}

// uint reads an n-byte unsigned integer.
func (r *sessionReader) uint(field string, n int) uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < n {
		r.fail(field, "truncated")
		return 0
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v
}

// vector reads a vector with an n-byte length prefix.
func (r *sessionReader) vector(field string, n int) []byte {
	start := r.off
	l := r.uint(field, n)
	if r.err != nil {
		return nil
	}
	if uint64(len(r.b)-r.off) < l {
		r.off = start
		r.fail(field, fmt.Sprintf("length %d exceeds the %d bytes left", l, len(r.b)-r.off-n))
		return nil
	}
	v := r.b[r.off : r.off+int(l)]
	r.off += int(l)
	return v
}

// parseSessionFacts reads a client session encoded by
// [tls.SessionState.Bytes]. The layout is documented field by field on
// SessionState in $GOROOT/src/crypto/tls/ticket.go (Go 1.26):
//
//	uint16 version;
//	SessionStateType type;                 /* uint8: server(1), client(2) */
//	uint16 cipher_suite;
//	uint64 created_at;
//	opaque secret<1..2^8-1>;
//	Extra extra<0..2^24-1>;
//	uint8 ext_master_secret = { 0, 1 };
//	uint8 early_data = { 0, 1 };
//	CertificateEntry certificate_list<0..2^24-1>;
//	CertificateChain verified_chains<0..2^24-1>;
//	select (early_data) { case 1: opaque alpn<1..2^8-1>; };
//	select (version) {
//	    case VersionTLS10..VersionTLS12: uint16 curve_id;
//	    case VersionTLS13: client: uint64 use_by; uint32 age_add;
//	};
//
// crypto/tls calls the encoding opaque and free to change between Go
// versions, but extends it only at the end (ticket.go), so trailing bytes are
// accepted. The tests check this parser against sessions from the running
// Go, so a change of layout fails them.
func parseSessionFacts(b []byte) (sessionFacts, error) {
	r := &sessionReader{b: b}
	var f sessionFacts
	f.version = uint16(r.uint("version", 2))
	typOff := r.off
	typ := r.uint("type", 1)
	f.cipherSuite = uint16(r.uint("cipher_suite", 2))
	f.createdAt = r.uint("created_at", 8)
	if secretOff := r.off; len(r.vector("secret", 1)) == 0 && r.err == nil {
		r.off = secretOff
		r.fail("secret", "empty")
	}
	r.vector("extra", 3)
	if ems := r.uint("ext_master_secret", 1); ems > 1 {
		r.off--
		r.fail("ext_master_secret", fmt.Sprintf("value %d is not 0 or 1", ems))
	}
	earlyData := r.uint("early_data", 1)
	if earlyData > 1 {
		r.off--
		r.fail("early_data", fmt.Sprintf("value %d is not 0 or 1", earlyData))
	}
	r.vector("certificate_list", 3)
	r.vector("verified_chains", 3)
	if earlyData == 1 {
		r.vector("alpn", 1)
	}
	if f.version >= tls.VersionTLS13 {
		if typ == 2 {
			f.useBy = r.uint("use_by", 8)
			r.uint("age_add", 4)
		}
	} else {
		r.uint("curve_id", 2)
	}
	if r.err != nil {
		return sessionFacts{}, r.err
	}
	if typ != 2 {
		r.off = typOff
		r.fail("type", fmt.Sprintf("value %d is not client(2)", typ))
		return sessionFacts{}, r.err
	}
	return f, nil
}

// clientSessionFacts encodes cs and reads its facts.
func clientSessionFacts(cs *tls.ClientSessionState) (sessionFacts, error) {
	_, state, err := cs.ResumptionState()
	if err != nil {
		return sessionFacts{}, fmt.Errorf("upstream: reading session: %w", err)
	}
	if state == nil {
		return sessionFacts{}, fmt.Errorf("upstream: reading session: no session state")
	}
	b, err := state.Bytes()
	if err != nil {
		return sessionFacts{}, fmt.Errorf("upstream: encoding session: %w", err)
	}
	return parseSessionFacts(b)
}
