package inspect

import "fmt"

// maxMessageBuffer bounds the handshake messages a stream keeps in memory.
// Hellos and NewSessionTicket are small; longer messages (Certificate) are
// skipped without buffering, only their type is reported.
const maxMessageBuffer = maxHelloLen + 4

// recordReader splits one direction of a connection into TLS records and
// plaintext handshake messages. It keeps at most one partial record and one
// partial message.
type recordReader struct {
	pending   []byte // bytes of an incomplete record
	hs        []byte // bytes of an incomplete handshake message
	skip      int    // bytes of an oversized message still to skip
	encrypted bool   // records are no longer plaintext handshake
	// rehello: even when encrypted, a record that holds exactly one
	// ClientHello is read. A capture that keeps only hellos has no
	// HelloRetryRequest to tell that the client's ChangeCipherSpec was the
	// compatibility one before a second hello (RFC 8446, Appendix D.4); an
	// encrypted Finished passes this test with odds of about 2^-32.
	rehello bool
	err     error // set once the stream is not TLS; later input is ignored
	offset  int   // bytes consumed so far, for error offsets
}

// wireEvent is what a recordReader reports: a complete handshake message,
// or a record of another content type.
type wireEvent struct {
	record  byte   // content type
	msgType byte   // handshake message type, for record == recordHandshake
	msg     []byte // the whole message for small messages, nil when skipped
	body    []byte // the record body, for records other than handshake
}

// feed consumes data and calls fn for each event. The msg slice is only
// valid during the call.
func (s *recordReader) feed(data []byte, fn func(wireEvent)) {
	if s.err != nil {
		return
	}
	buf := data
	if len(s.pending) > 0 {
		s.pending = append(s.pending, data...)
		buf = s.pending
	}
	for len(buf) >= 5 {
		ct := buf[0]
		n := int(buf[3])<<8 | int(buf[4])
		if ct < recordChangeCipherSpec || ct > recordApplicationData+1 || buf[1] != 3 || n > maxRecordLen+256 {
			// TLS 1.3 allows 2^14+256 for ciphertext (RFC 8446, Section 5.2).
			s.err = fmt.Errorf("inspect: not a TLS record at stream offset %d (type %d, version 0x%02x%02x, length %d)", s.offset, ct, buf[1], buf[2], n)
			s.pending = nil
			return
		}
		if len(buf) < 5+n {
			break
		}
		body := buf[5 : 5+n]
		buf = buf[5+n:]
		s.offset += 5 + n
		switch {
		case ct == recordHandshake && !s.encrypted:
			s.handshake(body, fn)
		case ct == recordHandshake && s.rehello && isWholeClientHello(body):
			s.handshake(body, fn)
		case ct == recordHandshake:
			// encrypted handshake (TLS 1.2 Finished): nothing to read
		default:
			fn(wireEvent{record: ct, body: body})
		}
		if s.err != nil {
			return
		}
	}
	// Keep the incomplete tail; append copies (memmove) even when buf is
	// already the tail of s.pending, and data may be reused by the caller.
	s.pending = append(s.pending[:0], buf...)
}

// handshake gathers plaintext handshake bytes into messages.
func (s *recordReader) handshake(body []byte, fn func(wireEvent)) {
	for len(body) > 0 {
		if s.skip > 0 {
			k := min(s.skip, len(body))
			s.skip -= k
			body = body[k:]
			continue
		}
		need := 4
		if len(s.hs) >= 4 {
			need = 4 + (int(s.hs[1])<<16 | int(s.hs[2])<<8 | int(s.hs[3]))
		}
		if len(s.hs) == 0 && len(body) >= 4 {
			// Fast path: a whole message inside this record.
			total := 4 + (int(body[1])<<16 | int(body[2])<<8 | int(body[3]))
			if len(body) >= total {
				fn(wireEvent{record: recordHandshake, msgType: body[0], msg: body[:total:total]})
				body = body[total:]
				continue
			}
		}
		k := min(need-len(s.hs), len(body))
		s.hs = append(s.hs, body[:k]...)
		body = body[k:]
		if len(s.hs) < 4 {
			continue
		}
		total := 4 + (int(s.hs[1])<<16 | int(s.hs[2])<<8 | int(s.hs[3]))
		if total > maxMessageBuffer {
			// Report the type, skip the rest without keeping it.
			fn(wireEvent{record: recordHandshake, msgType: s.hs[0]})
			s.skip = total - len(s.hs)
			s.hs = s.hs[:0]
			continue
		}
		if len(s.hs) == total {
			fn(wireEvent{record: recordHandshake, msgType: s.hs[0], msg: s.hs})
			s.hs = s.hs[:0]
		}
	}
}

func isWholeClientHello(b []byte) bool {
	return len(b) >= 4+38 && b[0] == typeClientHello && 4+(int(b[1])<<16|int(b[2])<<8|int(b[3])) == len(b)
}
