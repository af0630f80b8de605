package inspect

import (
	"errors"
	"fmt"
)

// Sentinel errors for errors.Is; a *ReadError or *ParseError wraps one of them.
var (
	// ErrNotTLS: the stream does not start with a TLS handshake record.
	ErrNotTLS = errors.New("inspect: not TLS")
	// ErrSSLv2: an SSL 2.0-format ClientHello, which no current server accepts.
	ErrSSLv2 = errors.New("inspect: SSLv2 hello")
	// ErrTooLarge: the ClientHello claims more than 64 KiB.
	ErrTooLarge = errors.New("inspect: hello too large")
	// ErrUnexpectedRecord: a record other than handshake came before the hello was complete.
	ErrUnexpectedRecord = errors.New("inspect: unexpected record")
	// ErrNotClientHello: the first handshake message is not a ClientHello.
	ErrNotClientHello = errors.New("inspect: not a ClientHello")
	// ErrTruncated: the stream or message ended before the hello was complete.
	ErrTruncated = errors.New("inspect: truncated")
	// ErrMalformed: a length or value inside a message is inconsistent.
	ErrMalformed = errors.New("inspect: malformed")
)

// ReadError says why [ReadClientHello] stopped: what it found, where, and the
// bytes it saw. It wraps one of the sentinel errors and, when reading failed,
// the I/O error.
type ReadError struct {
	Kind   error  // one of the sentinel errors above
	Offset int    // byte offset in the stream where the problem was found
	Detail string // what was wrong, in words
	Guess  string // for ErrNotTLS: "http", "http2", "ssh", or "" when unknown
	Prefix []byte // up to the first 16 bytes of the stream
	Err    error  // the underlying I/O error, if any
}

func (e *ReadError) Error() string {
	s := fmt.Sprintf("%v at offset %d: %s", e.Kind, e.Offset, e.Detail)
	if e.Guess != "" {
		s += " (looks like " + e.Guess + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ReadError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// ParseError says which field of which message could not be parsed, and at
// which byte offset of the message (counted from its handshake header).
type ParseError struct {
	Message string // "client_hello" or "server_hello"
	Field   string // e.g. "cipher_suites", "extension pre_shared_key"
	Offset  int
	Kind    error // ErrTruncated or ErrMalformed
	Detail  string
}

func (e *ParseError) Error() string {
	s := fmt.Sprintf("inspect: %s: %s at offset %d: %s", e.Message, e.Field, e.Offset, kindWord(e.Kind))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Kind }

func kindWord(k error) string {
	if k == ErrTruncated {
		return "truncated"
	}
	return "malformed"
}
