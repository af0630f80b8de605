package pcap

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// bufferLimit bounds the out-of-order bytes held back per direction. Once
// it is passed, the holes are given up on and the held bytes are delivered
// with Gap set. With the default MaxBytes it is never reached: nothing past
// MaxBytes is held.
const bufferLimit = 256 << 10

// half is one direction of a TCP connection: the bytes src sends to dst.
//
// Sequence numbers are compared as int32 differences (RFC 1982 serial
// number arithmetic), which handles wraparound as long as every byte held
// lies within 2^31 of next; maxMaxBytes guarantees it.
type half struct {
	src, dst netip.AddrPort
	client   bool // src sent a SYN without ACK
	started  bool // next is known
	synSeen  bool // isn is known
	isn      uint32
	next     uint32 // sequence number of the next byte to deliver
	off      int64  // stream offset of next, holes included
	finSeen  bool
	finSeq   uint32 // sequence number of the FIN
	finAt    origin // the frame that carried the FIN
	closed   bool   // the Closed segment was delivered
	pend     []chunk
	pendLen  int // bytes in pend
}

// chunk is an out-of-order piece of payload, copied out of its frame.
type chunk struct {
	seq  uint32
	data []byte
	from origin
}

// origin is the frame that makes bytes deliverable.
type origin struct {
	frame int
	ts    time.Time
}

// emit delivers data, or a Closed segment when closed is set.
func (h *half) emit(a *assembler, data []byte, gap, closed bool, o origin) error {
	return a.fn(Segment{
		Time: o.ts, Src: h.src, Dst: h.dst, SYN: h.client,
		Data: data, Gap: gap, Closed: closed, Frame: o.frame,
	})
}

// start records where the stream begins: after the SYN when one was seen
// (the SYN takes one sequence number, RFC 9293 §3.4), else at the first
// segment seen in this direction.
func (h *half) start(p *packet) {
	if p.syn {
		if !p.ack {
			h.client = true
		}
		if !h.synSeen && !h.started {
			h.synSeen, h.isn = true, p.seq
			h.started, h.next = true, p.seq+1
		}
	}
	if !h.started {
		h.started, h.next = true, p.seq
	}
}

// add takes the payload of one segment whose first byte has sequence
// number seq.
func (h *half) add(a *assembler, seq uint32, payload []byte, o origin) error {
	room := a.max - h.off
	if room <= 0 || len(payload) == 0 {
		return nil
	}
	d := int64(int32(seq - h.next))
	if d < 0 { // a retransmission, in whole or in part
		if -d >= int64(len(payload)) {
			return nil
		}
		payload, seq, d = payload[-d:], h.next, 0
	}
	if d >= room {
		return nil
	}
	if d+int64(len(payload)) > room {
		payload = payload[:room-d]
	}
	if d > 0 {
		h.hold(seq, payload, o)
		if h.pendLen > bufferLimit {
			return h.flush(a, &o)
		}
		return nil
	}
	if err := h.emit(a, payload, false, false, o); err != nil {
		return err
	}
	h.advance(len(payload))
	return h.drain(a, o)
}

func (h *half) advance(n int) {
	h.next += uint32(n)
	h.off += int64(n)
}

// hold inserts an out-of-order piece into pend, which it keeps sorted and
// free of overlaps: bytes already held are not held twice.
func (h *half) hold(seq uint32, data []byte, o origin) {
	rel := func(s uint32) int64 { return int64(int32(s - h.next)) }
	start := rel(seq)
	i, _ := slices.BinarySearchFunc(h.pend, start, func(c chunk, t int64) int {
		return cmp.Compare(rel(c.seq), t)
	})
	if i > 0 { // trim what the chunk before already holds
		prev := h.pend[i-1]
		prevEnd := rel(prev.seq) + int64(len(prev.data))
		if prevEnd >= start+int64(len(data)) {
			return
		}
		if prevEnd > start {
			data, seq, start = data[prevEnd-start:], seq+uint32(prevEnd-start), prevEnd
		}
	}
	end := start + int64(len(data))
	j := i // drop the chunks this one covers
	for j < len(h.pend) && rel(h.pend[j].seq)+int64(len(h.pend[j].data)) <= end {
		h.pendLen -= len(h.pend[j].data)
		j++
	}
	h.pend = slices.Delete(h.pend, i, j)
	if i < len(h.pend) { // trim what the chunk after already holds
		if next := rel(h.pend[i].seq); next < end {
			data = data[:next-start]
		}
	}
	if len(data) == 0 {
		return
	}
	h.pend = slices.Insert(h.pend, i, chunk{seq: seq, data: slices.Clone(data), from: o})
	h.pendLen += len(data)
}

// drain delivers the held chunks that have become contiguous.
func (h *half) drain(a *assembler, o origin) error {
	for len(h.pend) > 0 {
		c := h.pend[0]
		d := int64(int32(c.seq - h.next))
		if d > 0 {
			return nil
		}
		h.pop()
		if -d >= int64(len(c.data)) {
			continue
		}
		if err := h.emit(a, c.data[-d:], false, false, o); err != nil {
			return err
		}
		h.advance(len(c.data[-d:]))
	}
	return nil
}

// flush gives up on the holes and delivers everything held, with Gap set
// on each chunk that follows a hole. The chunks are attributed to o, or to
// the frames that carried them when o is nil.
func (h *half) flush(a *assembler, o *origin) error {
	for len(h.pend) > 0 {
		c := h.pop()
		d := int64(int32(c.seq - h.next))
		data := c.data
		if d < 0 {
			if -d >= int64(len(data)) {
				continue
			}
			data = data[-d:]
		}
		if d > 0 {
			h.next, h.off = c.seq, h.off+d
		}
		from := c.from
		if o != nil {
			from = *o
		}
		if err := h.emit(a, data, d > 0, false, from); err != nil {
			return err
		}
		h.advance(len(data))
	}
	h.pend = nil
	return nil
}

func (h *half) pop() chunk {
	c := h.pend[0]
	h.pend[0] = chunk{}
	h.pend = h.pend[1:]
	h.pendLen -= len(c.data)
	return c
}

// done reports whether everything up to the FIN has been delivered, or
// nothing more would be.
func (h *half) done(a *assembler) bool {
	return h.finSeen && (int32(h.finSeq-h.next) <= 0 || h.off >= a.max)
}

// close delivers the Closed segment once.
func (h *half) close(a *assembler, o origin) error {
	if h.closed || !h.started {
		return nil
	}
	h.closed, h.pend, h.pendLen = true, nil, 0
	return h.emit(a, nil, false, true, o)
}
