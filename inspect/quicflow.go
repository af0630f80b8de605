package inspect

import "time"

// minClientInitial is the smallest UDP payload that can carry a client's
// Initial: clients pad those datagrams to 1200 bytes (RFC 9000, Section
// 14.1). Smaller datagrams never start a QUIC connection here.
const minClientInitial = 1200

// QUICFlow reads the QUIC connections of one UDP flow (one client address
// and port, one server address and port) datagram by datagram, as they
// pass: the proxy's live view of a device's QUIC and the capture reader's
// of a capture's read them alike. For each ClientHello that a client's
// Initial packets carry it hands Emit a Record, as a Conversation does for
// TCP, with transport "quic", the connection's QUIC facts (version,
// connection IDs, Retry, Version Negotiation), the server's answer from its
// Initial packets (server_hello, resumed) and whether the client sent
// 0-RTT packets after it (early_data_sent).
//
// A record is handed on once its verdict is known and no 0-RTT packet can
// follow its hello (the client's first Handshake or 1-RTT packet), or at
// Close. A client may open several connections on one flow, one after the
// other (quic-go reuses its port): an Initial to a new connection ID that
// only keys of its own decrypt starts the next, and the one before ends,
// its records handed on first.
//
// Its memory is bounded whatever the peers send: CRYPTO bytes are kept up
// to a hello's size, and once a connection's hellos are answered and the
// client has moved past its Initials, no more Initials are decrypted; a
// datagram then costs a look at its first bytes. A flow does not keep the
// datagrams it is given: they may be reused once a call returns. A
// QUICFlow is not safe for use by more than one goroutine at once.
type QUICFlow struct {
	Source     Source // copied into records
	ClientAddr string
	ServerAddr string
	History    *SessionHistory // optional, as for Conversation
	// Started, when set, is told that a client's Initial, seen at t,
	// starts a QUIC connection on the flow: after the records of the
	// connection before it, before any record of its own.
	Started func(t time.Time)
	Emit    func(*Record)

	conn *quicConn // the connection followed; nil before the first
}

// Client reads one datagram the client sent; t and frame say when and
// where it was seen (frame is 0 when read live).
func (f *QUICFlow) Client(b []byte, t time.Time, frame int) {
	if len(b) == 0 {
		return
	}
	if f.conn == nil || f.conn.startsAnew(b) {
		if !looksLikeClientInitial(b) {
			return
		}
		if f.conn != nil {
			f.conn.close()
		}
		f.conn = newQUICConn(f)
		if f.Started != nil {
			f.Started(t)
		}
	}
	f.conn.read(0, b, quicStamp{t, frame})
}

// Server reads one datagram the server sent. Before the client's first
// Initial there is nothing to read it for.
func (f *QUICFlow) Server(b []byte, t time.Time, frame int) {
	if f.conn == nil || len(b) == 0 {
		return
	}
	f.conn.read(1, b, quicStamp{t, frame})
}

// Close ends the flow: the records still held are handed on, and what was
// not seen is recorded as not seen. A datagram given after Close may
// start a connection again.
func (f *QUICFlow) Close() {
	if f.conn != nil {
		f.conn.close()
		f.conn = nil
	}
}

// looksLikeClientInitial: a long header with the fixed bit (RFC 9000,
// Section 17.2; a client cannot grease that bit in its first packet) in a
// datagram padded as a client's first flight must be. RTP and most other
// UDP protocols fail the first test.
func looksLikeClientInitial(b []byte) bool {
	if len(b) < minClientInitial || b[0]&0xc0 != 0xc0 {
		return false
	}
	h, err := parseLongHeader(b)
	if err != nil {
		return false
	}
	return h.typ == quicInitial || h.typ == quicUnknownVersion
}
