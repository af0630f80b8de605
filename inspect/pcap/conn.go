package pcap

import "net/netip"

// maxConns bounds the connections tracked at once, ended ones included.
// When it is reached the connection that ended first is forgotten, or, if
// none has ended, the least recently active one, after delivering what it
// holds.
const maxConns = 65536

// connKey is a connection's 4-tuple with the lower endpoint first, so that
// both directions find the same connection.
type connKey struct{ lo, hi netip.AddrPort }

// keyOf returns the key of the connection a packet from src to dst belongs
// to, and the index of src's half in it.
func keyOf(src, dst netip.AddrPort) (connKey, int) {
	if src.Compare(dst) <= 0 {
		return connKey{src, dst}, 0
	}
	return connKey{dst, src}, 1
}

// conn is one TCP connection. After both directions end it stays as a
// tombstone, without buffers, so that late ACKs and retransmitted FINs are
// not taken for a new connection; a new SYN on the same 4-tuple replaces it.
type conn struct {
	key        connKey
	half       [2]half
	ended      bool
	prev, next *conn // in the assembler's live or ended list
}

// connList is a doubly linked list of connections, oldest first.
type connList struct{ root conn }

func (l *connList) init() { l.root.prev, l.root.next = &l.root, &l.root }

func (l *connList) front() *conn {
	if l.root.next == &l.root {
		return nil
	}
	return l.root.next
}

func (l *connList) pushBack(c *conn) {
	c.prev, c.next = l.root.prev, &l.root
	c.prev.next, l.root.prev = c, c
}

func unlink(c *conn) {
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
}

// assembler tracks the connections of one capture.
type assembler struct {
	fn    func(Segment) error
	max   int64 // Options.MaxBytes, defaults applied
	conns map[connKey]*conn
	live  connList // least recently active first
	ended connList // tombstones, first ended first
}

func newAssembler(max int64, fn func(Segment) error) *assembler {
	if fn == nil {
		fn = func(Segment) error { return nil }
	}
	a := &assembler{fn: fn, max: max, conns: make(map[connKey]*conn)}
	a.live.init()
	a.ended.init()
	return a
}

// segment processes one TCP segment.
func (a *assembler) segment(p *packet, o origin) error {
	key, dir := keyOf(p.src, p.dst)
	newSYN := p.syn && !p.ack
	c := a.conns[key]
	switch {
	case c == nil:
		if !p.syn && len(p.payload) == 0 {
			return nil // a bare ACK, FIN or RST tells nothing about an unknown connection
		}
		var err error
		if c, err = a.add(key); err != nil {
			return err
		}
	case c.ended:
		// A SYN or SYN-ACK with a new initial sequence number opens a new
		// connection on the 4-tuple; anything else is the old one's tail.
		if !p.syn || c.half[dir].synSeen && c.half[dir].isn == p.seq {
			return nil
		}
		a.reset(c)
	case newSYN && c.half[dir].synSeen && c.half[dir].isn != p.seq:
		// The 4-tuple is reused without the end of the old connection
		// having been captured.
		if err := a.end(c, nil, false); err != nil {
			return err
		}
		a.reset(c)
	}
	unlink(c)
	a.live.pushBack(c)

	h := &c.half[dir]
	h.start(p)
	if p.rst { // RST aborts both directions (RFC 9293 §3.10.7.4)
		return a.end(c, &o, true)
	}
	seq := p.seq
	if p.syn {
		seq++ // data on a SYN (TCP Fast Open, RFC 7413) starts after it
	}
	if err := h.add(a, seq, p.payload, o); err != nil {
		return err
	}
	if p.fin && !h.finSeen {
		h.finSeen, h.finSeq, h.finAt = true, seq+uint32(len(p.payload)), o
	}
	if h.done(a) {
		if err := h.close(a, o); err != nil {
			return err
		}
	}
	if peer := &c.half[1-dir]; h.finSeen && (peer.finSeen || peer.closed) {
		return a.end(c, &o, true)
	}
	return nil
}

// add starts tracking a connection, forgetting one if the table is full.
func (a *assembler) add(key connKey) (*conn, error) {
	if len(a.conns) >= maxConns {
		if old := a.ended.front(); old != nil {
			unlink(old)
			delete(a.conns, old.key)
		} else if old := a.live.front(); old != nil {
			if err := a.end(old, nil, false); err != nil {
				return nil, err
			}
			unlink(old)
			delete(a.conns, old.key)
		}
	}
	c := &conn{key: key}
	a.reset(c)
	a.conns[key] = c
	a.live.pushBack(c) // segment moves it again; this keeps the list whole
	return c, nil
}

// reset makes c a new connection on the same 4-tuple.
func (a *assembler) reset(c *conn) {
	c.half = [2]half{{src: c.key.lo, dst: c.key.hi}, {src: c.key.hi, dst: c.key.lo}}
	c.ended = false
}

// end delivers what c holds after its holes, attributed to o or, when o is
// nil, to the frames that carried it (and Closed to the FIN's frame). It
// delivers Closed for each direction that saw a FIN, or for both when all
// is set, and then c becomes a tombstone.
func (a *assembler) end(c *conn, o *origin, all bool) error {
	for i := range c.half {
		h := &c.half[i]
		if err := h.flush(a, o); err != nil {
			return err
		}
		if !all && !h.finSeen {
			continue
		}
		at := h.finAt
		if o != nil {
			at = *o
		}
		if err := h.close(a, at); err != nil {
			return err
		}
	}
	if all {
		c.ended = true
		unlink(c)
		a.ended.pushBack(c)
	}
	return nil
}

// finish ends the capture: every connection still live delivers what it
// holds, oldest first.
func (a *assembler) finish() error {
	for c := a.live.front(); c != nil; c = a.live.front() {
		if err := a.end(c, nil, false); err != nil {
			return err
		}
		unlink(c)
		delete(a.conns, c.key)
	}
	return nil
}
