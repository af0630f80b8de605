package inspect

import (
	"fmt"
	"slices"
)

// maxCryptoStream bounds how far into a CRYPTO stream bytes are kept: a
// ClientHello and a ServerHello fit in it with room to spare; the
// Initial-level stream of a client carries nothing else, and of a server
// only the ServerHello (the rest of its flight is in Handshake packets).
const maxCryptoStream = maxHelloLen + 4

// cryptoStream reassembles one direction's CRYPTO frames at one encryption
// level (RFC 9000, Section 19.6): frames may arrive in any order, overlap,
// repeat, and one message may span several packets (Chromium spreads its
// ClientHello over several frames on purpose). Bytes are handed on once,
// in order, as soon as they follow the ones before.
type cryptoStream struct {
	next    uint64        // offset of the next byte to hand on
	pending []cryptoFrame // held frames beyond next, sorted by offset, copied
	held    int           // bytes in pending
}

// add takes one frame and calls deliver with each run of bytes that became
// contiguous. It returns an error, and keeps nothing of the frame, when the
// frame lies beyond maxCryptoStream.
func (s *cryptoStream) add(f cryptoFrame, deliver func([]byte)) error {
	end := f.offset + uint64(len(f.data))
	if end > maxCryptoStream || end < f.offset {
		return fmt.Errorf("quic: CRYPTO frame at offset %d, length %d, runs past the %d bytes read", f.offset, len(f.data), maxCryptoStream)
	}
	if end <= s.next {
		return nil // a retransmission of bytes already handed on
	}
	if f.offset > s.next {
		s.hold(f)
		return nil
	}
	deliver(f.data[s.next-f.offset:])
	s.next = end
	for len(s.pending) > 0 && s.pending[0].offset <= s.next {
		p := s.pending[0]
		s.pending = s.pending[1:]
		s.held -= len(p.data)
		if e := p.offset + uint64(len(p.data)); e > s.next {
			deliver(p.data[s.next-p.offset:])
			s.next = e
		}
	}
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return nil
}

// hold keeps a copy of a frame that does not follow the bytes handed on
// yet. Total held bytes stay within maxCryptoStream because every frame
// ends within it; duplicates of held frames are dropped.
func (s *cryptoStream) hold(f cryptoFrame) {
	i, found := slices.BinarySearchFunc(s.pending, f.offset, func(p cryptoFrame, off uint64) int {
		switch {
		case p.offset < off:
			return -1
		case p.offset > off:
			return 1
		}
		return 0
	})
	if found && len(s.pending[i].data) >= len(f.data) {
		return
	}
	if s.held+len(f.data) > 2*maxCryptoStream {
		return // an adversarial pattern of overlaps; the gap is reported at the end
	}
	c := cryptoFrame{offset: f.offset, data: slices.Clone(f.data)}
	if found {
		s.held -= len(s.pending[i].data)
		s.pending[i] = c
	} else {
		s.pending = slices.Insert(s.pending, i, c)
	}
	s.held += len(c.data)
}

// gap reports whether bytes are held after a hole that never filled.
func (s *cryptoStream) gap() bool { return len(s.pending) > 0 }
