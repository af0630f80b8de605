package inspect

import (
	"encoding/hex"
	"fmt"
	"time"
)

// quicConn is one QUIC connection of a flow (QUICFlow), from the client's
// first Initial on. It decrypts both directions' Initial packets,
// reassembles their CRYPTO frames and feeds the bytes, framed as TLS
// records, to a Conversation, so that QUIC hellos get the same parser and
// the same record as TCP ones.
type quicConn struct {
	version uint32
	keys    [2]*quicKeys // client, server; nil for a version not read
	odcid   []byte       // the DCID the keys derive from
	// other holds keys for another version the connection switched to
	// (compatible version negotiation, RFC 9368), from the same DCID.
	other   map[uint32][2]*quicKeys
	largest [2]int64 // largest packet number per direction, -1 before the first
	crypto  [2]cryptoStream
	conv    *Conversation
	facts   QUICFacts
	// Records wait in held until the client's first Handshake or 1-RTT
	// packet: a 0-RTT packet before it marks them early_data_sent.
	held     []*Record
	released bool
	early    bool
	retried  bool   // a Retry was applied: the keys derive from its SCID
	retryTo  []byte // the SCID of a Retry not yet followed by the client
	reported bool   // why the Initials could not be read was recorded
	emit     func(*Record)
}

// quicStamp says when a datagram was seen, and in which frame of a
// capture (0 when read live).
type quicStamp struct {
	t     time.Time
	frame int
}

func newQUICConn(f *QUICFlow) *quicConn {
	c := &quicConn{largest: [2]int64{-1, -1}, emit: f.Emit}
	c.conv = &Conversation{
		Source: f.Source, Transport: TransportQUIC, ClientAddr: f.ClientAddr, ServerAddr: f.ServerAddr,
		History: f.History, Emit: c.hold,
	}
	return c
}

// startsAnew reports whether a client datagram on a followed 4-tuple opens
// another connection (a client reusing its port, as quic-go's does): an
// Initial to an ID the connection has not used that the connection's keys
// do not open but keys from that ID do. A client may switch to any
// connection ID the server issued (RFC 9000, Section 5.1.2), so an unknown
// ID alone says nothing. For a version not read, another version or ID is another
// attempt.
func (c *quicConn) startsAnew(b []byte) bool {
	if b[0]&0x80 == 0 {
		return false
	}
	h, err := parseLongHeader(b)
	if err != nil || (h.typ != quicInitial && h.typ != quicUnknownVersion) {
		return false
	}
	if c.keys[0] == nil {
		return h.version != c.version || hex.EncodeToString(h.dcid) != c.facts.DCID
	}
	if h.typ != quicInitial {
		return true
	}
	dcid := hex.EncodeToString(h.dcid)
	if dcid == c.facts.DCID || dcid == c.facts.ServerSCID || c.retryTo != nil && string(h.dcid) == string(c.retryTo) {
		return false // an ID this connection uses: no need to decrypt twice
	}
	pkt := b[:h.length]
	if _, _, err := c.keysFor(h.version)[0].open(pkt, &h, c.largest[0]); err == nil {
		return false
	}
	fresh, _ := initialKeys(quicVersions[h.version], h.dcid)
	_, _, err = fresh.open(pkt, &h, -1)
	return err == nil
}

// read takes every packet of one datagram: long-header packets may be
// coalesced (RFC 9000, Section 12.2); a short-header packet ends it.
func (c *quicConn) read(dir int, b []byte, d quicStamp) {
	for len(b) > 0 {
		if b[0]&0x80 == 0 {
			if dir == 0 {
				c.release() // 1-RTT: the client has its handshake keys and more
			}
			return
		}
		h, err := parseLongHeader(b)
		if err != nil {
			c.fail(d, err.Error())
			return
		}
		c.packet(dir, b[:h.length], &h, d)
		b = b[h.length:]
	}
}

func (c *quicConn) packet(dir int, pkt []byte, h *quicHeader, d quicStamp) {
	if c.facts.Version == "" {
		c.start(h)
	}
	switch h.typ {
	case quicVersionNegotiation:
		if dir == 1 {
			c.facts.VersionNegotiation = make([]string, len(h.versions))
			for i, v := range h.versions {
				c.facts.VersionNegotiation[i] = fmt.Sprintf("%08x", v)
			}
		}
		return
	case quicUnknownVersion:
		if dir == 0 {
			c.fail(d, fmt.Sprintf("quic: version %s (%08x): its Initial packets are not read (versions read: v1, v2)", QUICVersionName(h.version), h.version))
		}
		return
	case quicRetry:
		if dir == 1 && c.keys[0] != nil && !c.retried {
			c.facts.Retry = &QUICRetry{SCID: hex.EncodeToString(h.scid), TokenLen: retryTokenLen(pkt, h)}
			c.retryTo = append([]byte(nil), h.scid...)
			// The hello sent before the Retry gets no ServerHello: record it now.
			c.conv.Close()
		}
		return
	case quicZeroRTT:
		if dir == 0 && !c.released {
			c.early = true
		}
		return
	case quicHandshake:
		if dir == 0 {
			c.release()
		}
		return
	}
	// An Initial.
	if c.settled() {
		return
	}
	if dir == 0 && c.retryTo != nil && string(h.dcid) == string(c.retryTo) {
		c.afterRetry(h)
	}
	keys := c.keysFor(h.version)
	if keys[dir] == nil {
		return
	}
	if dir == 1 && c.facts.ServerSCID == "" {
		c.facts.ServerSCID = hex.EncodeToString(h.scid)
	}
	if dir == 1 && h.version != c.version && c.facts.NegotiatedVersion == "" {
		c.facts.NegotiatedVersion = fmt.Sprintf("%08x", h.version)
	}
	payload, pn, err := keys[dir].open(pkt, h, c.largest[dir])
	if err != nil {
		if dir == 0 && c.conv.open == nil && c.crypto[0].next == 0 {
			c.fail(d, "quic: the client's first Initial does not decrypt with keys from its Destination Connection ID")
		}
		return // a packet of another connection, or corrupted: not ours to read
	}
	c.largest[dir] = max(c.largest[dir], pn)
	var ferr error
	if err := quicFrames(payload, func(f cryptoFrame) {
		if ferr == nil {
			ferr = c.crypto[dir].add(f, func(b []byte) { c.deliver(dir, b, d) })
		}
	}); err != nil || ferr != nil {
		c.fail(d, firstErr(ferr, err).Error())
	}
}

// settled reports whether no Initial packet can change the connection's
// records any more: the client moved past its Initials (release) and
// every hello it sent was answered and handed on. Initials are no longer
// decrypted then, so that a long connection costs a look at each
// datagram's first byte, not a decryption.
func (c *quicConn) settled() bool {
	return c.released && len(c.conv.open) == 0 && c.crypto[0].next > 0
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// retryTokenLen is the length of a Retry packet's token: what lies
// between the connection IDs and the 16-byte integrity tag (RFC 9000,
// Section 17.2.5).
func retryTokenLen(pkt []byte, h *quicHeader) int {
	head := 7 + len(h.dcid) + len(h.scid)
	return max(0, len(pkt)-head-16)
}

// keysFor returns the Initial keys of version: the connection's own, or,
// after a server answered in another version it knows (compatible version
// negotiation, RFC 9368, Section 2.3), keys of that version from the same
// connection ID.
func (c *quicConn) keysFor(version uint32) [2]*quicKeys {
	qv := quicVersions[version]
	if version == c.version || qv == nil || c.keys[0] == nil {
		return c.keys
	}
	k, ok := c.other[version]
	if !ok {
		k[0], k[1] = initialKeys(qv, c.odcid)
		if c.other == nil {
			c.other = map[uint32][2]*quicKeys{}
		}
		c.other[version] = k
	}
	return k
}

// start takes the version and connection IDs of the client's first packet.
func (c *quicConn) start(h *quicHeader) {
	c.version = h.version
	c.facts.Version = fmt.Sprintf("%08x", h.version)
	c.facts.VersionName = QUICVersionName(h.version)
	c.facts.DCID = hex.EncodeToString(h.dcid)
	c.facts.SCID = hex.EncodeToString(h.scid)
	if qv := quicVersions[h.version]; qv != nil && h.typ == quicInitial {
		c.odcid = append([]byte(nil), h.dcid...)
		c.keys[0], c.keys[1] = initialKeys(qv, h.dcid)
	}
}

// afterRetry switches to the keys of the Retry's connection ID and starts
// the CRYPTO streams and the conversation over: the client sends its hello
// again from offset 0 (RFC 9000, Section 17.2.5.2).
func (c *quicConn) afterRetry(h *quicHeader) {
	for _, r := range c.held {
		c.finish(r) // the hello before the Retry keeps the facts it was sent with
	}
	c.keys[0], c.keys[1] = initialKeys(quicVersions[c.version], h.dcid)
	c.odcid, c.other = append([]byte(nil), h.dcid...), nil
	c.facts.DCID = hex.EncodeToString(h.dcid)
	c.facts.ServerSCID = ""
	c.largest = [2]int64{-1, -1}
	c.crypto = [2]cryptoStream{}
	c.retryTo, c.retried = nil, true
	old := c.conv
	c.conv = &Conversation{Source: old.Source, Transport: old.Transport, ClientAddr: old.ClientAddr, ServerAddr: old.ServerAddr, History: old.History, Emit: c.hold}
}

// deliver frames CRYPTO bytes as TLS handshake records for the
// Conversation, which reads handshake messages across records.
func (c *quicConn) deliver(dir int, b []byte, d quicStamp) {
	for len(b) > 0 {
		n := min(len(b), maxRecordLen)
		rec := make([]byte, 5+n)
		rec[0], rec[1], rec[2], rec[3], rec[4] = recordHandshake, 3, 3, byte(n>>8), byte(n)
		copy(rec[5:], b[:n])
		if dir == 0 {
			c.conv.Client(rec, d.t, d.frame)
		} else {
			c.conv.Server(rec, d.t, d.frame)
		}
		b = b[n:]
	}
}

// fail records once why the connection's Initials could not be read, as a
// record of its own when no hello was read, else on the hello's record.
func (c *quicConn) fail(d quicStamp, why string) {
	if c.reported {
		return
	}
	c.reported = true
	if len(c.held) == 0 && len(c.conv.open) == 0 && c.crypto[0].next == 0 {
		rec := &Record{V: SchemaVersion, Time: d.t, Frame: d.frame, Source: c.conv.Source, Transport: TransportNameQUIC,
			ClientAddr: c.conv.ClientAddr, ServerAddr: c.conv.ServerAddr, Error: why}
		c.held = append(c.held, rec)
		return
	}
	for _, e := range c.conv.open {
		if e.rec.Error == "" {
			e.rec.Error = why
		}
	}
}

// hold keeps a record of this connection until early data can no longer
// follow its hello.
func (c *quicConn) hold(r *Record) {
	if c.released {
		c.finish(r)
		c.emit(r)
		return
	}
	c.held = append(c.held, r)
}

// release hands on the held records: the client has moved past its
// Initials, so no 0-RTT packet follows.
func (c *quicConn) release() {
	if c.released {
		return
	}
	c.released = true
	for _, r := range c.held {
		c.finish(r)
		c.emit(r)
	}
	c.held = nil
}

// finish stamps a record with the connection's QUIC facts, unless it has
// them already, and with the 0-RTT seen so far.
func (c *quicConn) finish(r *Record) {
	if r.QUIC == nil {
		f := c.facts
		r.QUIC = &f
	}
	r.Transport = TransportNameQUIC
	r.EarlyDataSent = r.EarlyDataSent || c.early && r.ClientHello != nil
}

// close ends the connection: the capture ended, or the 4-tuple was reused.
func (c *quicConn) close() {
	c.conv.Close()
	if c.crypto[0].gap() && !c.reported {
		c.fail(quicStamp{}, "quic: the client's CRYPTO stream has a hole that never filled")
	}
	c.release()
}
