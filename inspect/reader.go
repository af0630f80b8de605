package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxRecordLen is the largest TLSPlaintext.length accepted: 2^14 (RFC 8446,
// Section 5.1) plus the 2048 bytes TLS 1.2 allowed for compression expansion
// (RFC 5246, Section 6.2.2), so that old clients are still read.
const maxRecordLen = 1<<14 + 2048

// ReadClientHello reads the first TLS records of a connection and returns
// the complete ClientHello handshake message (4-byte header and body),
// however it is split across records and reads, and raw, every byte it
// consumed from r, so that the caller can replay them to a TLS server.
//
// It reads exactly as far as the end of the record that completes the hello,
// so it never waits for bytes a client would only send after the server
// answers. On error raw still holds every byte read, and the error is a
// *ReadError. Plain HTTP, HTTP/2 and SSH are recognized from the first read,
// without waiting for more bytes.
func ReadClientHello(r io.Reader) (msg, raw []byte, err error) {
	raw = make([]byte, 0, 1024)
	var hs []byte // handshake bytes gathered across records, when split
	for records := 0; ; records++ {
		start := len(raw)
		raw, err = readRecordHeader(r, raw, records == 0)
		if err != nil {
			return nil, raw, err
		}
		hdr := raw[start : start+5]
		n := int(hdr[3])<<8 | int(hdr[4])
		if e := checkRecordHeader(hdr, start, raw); e != nil {
			return nil, raw, e
		}
		if len(hs)+n > maxHelloLen+4+maxRecordLen {
			return nil, raw, &ReadError{Kind: ErrTooLarge, Offset: start, Detail: "handshake records exceed 64 KiB", Prefix: prefix(raw)}
		}
		raw = grow(raw, n)
		if got, err := io.ReadFull(r, raw[start+5:start+5+n]); err != nil {
			raw = raw[:start+5+got]
			return nil, raw, &ReadError{Kind: ErrTruncated, Offset: start + 5 + got,
				Detail: fmt.Sprintf("record %d announced %d bytes, stream ended after %d", records+1, n, got), Prefix: prefix(raw), Err: err}
		}
		body := raw[start+5 : start+5+n]
		if records == 0 {
			hs = body
		} else {
			if records == 1 {
				hs = append([]byte(nil), hs...)
			}
			hs = append(hs, body...)
		}
		if len(hs) < 4 {
			continue
		}
		if hs[0] != typeClientHello {
			return nil, raw, &ReadError{Kind: ErrNotClientHello, Offset: 5,
				Detail: fmt.Sprintf("first handshake message has type %d, want 1 (client_hello)", hs[0]), Prefix: prefix(raw)}
		}
		total := 4 + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
		if total > maxHelloLen {
			return nil, raw, &ReadError{Kind: ErrTooLarge, Offset: 6,
				Detail: fmt.Sprintf("ClientHello claims %d bytes, limit is %d", total-4, maxHelloLen), Prefix: prefix(raw)}
		}
		if len(hs) >= total {
			return hs[:total:total], raw, nil
		}
	}
}

// readRecordHeader appends the next 5-byte record header to raw. On the first
// record it classifies the stream from whatever the first read returned, so a
// non-TLS protocol is reported without waiting for five bytes.
func readRecordHeader(r io.Reader, raw []byte, first bool) ([]byte, error) {
	start := len(raw)
	raw = grow(raw, 5)
	buf := raw[start : start+5]
	got := 0
	if first {
		n, err := io.ReadAtLeast(r, buf, 1)
		got = n
		if n > 0 && buf[0] != recordHandshake {
			raw = raw[:start+n]
			return raw, notTLS(raw)
		}
		if err != nil {
			raw = raw[:start+n]
			return raw, &ReadError{Kind: ErrTruncated, Offset: start + n, Detail: "stream ended before the first record", Err: err}
		}
	}
	n, err := io.ReadFull(r, buf[got:])
	got += n
	if err != nil {
		raw = raw[:start+got]
		if errors.Is(err, io.EOF) && got == 0 && !first {
			err = io.ErrUnexpectedEOF
		}
		return raw, &ReadError{Kind: ErrTruncated, Offset: start + got, Detail: "stream ended inside a record header", Prefix: prefix(raw), Err: err}
	}
	return raw, nil
}

// checkRecordHeader validates a record header at offset start.
func checkRecordHeader(hdr []byte, start int, raw []byte) error {
	n := int(hdr[3])<<8 | int(hdr[4])
	switch {
	case start == 0 && hdr[0] != recordHandshake:
		return notTLS(raw)
	case hdr[0] != recordHandshake:
		return &ReadError{Kind: ErrUnexpectedRecord, Offset: start,
			Detail: fmt.Sprintf("record of type %d (%s) before the ClientHello was complete", hdr[0], recordTypeName(hdr[0])), Prefix: prefix(raw)}
	case hdr[1] != 3 || hdr[2] > 4:
		if start == 0 {
			return notTLS(raw)
		}
		return &ReadError{Kind: ErrMalformed, Offset: start + 1,
			Detail: fmt.Sprintf("record version 0x%02x%02x is not TLS", hdr[1], hdr[2]), Prefix: prefix(raw)}
	case n == 0:
		return &ReadError{Kind: ErrMalformed, Offset: start + 3, Detail: "empty handshake record (RFC 8446, Section 5.1 forbids it)", Prefix: prefix(raw)}
	case n > maxRecordLen:
		return &ReadError{Kind: ErrMalformed, Offset: start + 3,
			Detail: fmt.Sprintf("record length %d exceeds %d", n, maxRecordLen), Prefix: prefix(raw)}
	}
	return nil
}

// notTLS builds the error for a stream that does not start like TLS, with a
// guess at what it is instead.
func notTLS(raw []byte) error {
	e := &ReadError{Kind: ErrNotTLS, Offset: 0, Prefix: prefix(raw)}
	switch {
	// SSL 2.0 CLIENT-HELLO: 2-byte length with the high bit set, then
	// msg_type 1 (draft-hickman-netscape-ssl-00, Appendix E.2 of RFC 5246).
	case len(raw) >= 3 && raw[0]&0x80 != 0 && raw[2] == 1:
		e.Kind = ErrSSLv2
		e.Detail = "SSL 2.0-format ClientHello"
		return e
	case hasPrefixOrPart(raw, "PRI * HTTP/2"):
		e.Guess = "http2"
	case hasPrefixOrPart(raw, "SSH-"):
		e.Guess = "ssh"
	case looksLikeHTTP(raw):
		e.Guess = "http"
	}
	e.Detail = fmt.Sprintf("first byte 0x%02x is not a handshake record (22)", raw[0])
	if len(raw) > 1 && raw[0] == recordHandshake {
		e.Detail = fmt.Sprintf("record version 0x%02x%02x is not TLS", raw[1], at(raw, 2))
	}
	return e
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST"), []byte("HEAD"), []byte("PUT "), []byte("DELE"),
	[]byte("OPTI"), []byte("CONN"), []byte("PATC"), []byte("TRAC"),
}

func looksLikeHTTP(b []byte) bool {
	for _, m := range httpMethods {
		n := min(len(b), len(m))
		if n > 0 && bytes.Equal(b[:n], m[:n]) {
			return true
		}
	}
	return false
}

func recordTypeName(t byte) string {
	switch t {
	case recordChangeCipherSpec:
		return "change_cipher_spec"
	case recordAlert:
		return "alert"
	case recordHandshake:
		return "handshake"
	case recordApplicationData:
		return "application_data"
	}
	return "unknown"
}

// grow extends b by n bytes of length, reusing capacity where it can.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func prefix(b []byte) []byte {
	return bytes.Clone(b[:min(len(b), 16)])
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}
