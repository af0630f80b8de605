package inspect

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"
)

// QUIC versions whose Initial packets this package decrypts.
const (
	QUICv1 uint32 = 0x00000001 // RFC 9000
	QUICv2 uint32 = 0x6b3343cf // RFC 9369
)

// QUIC long-header packet types, as named by RFC 9000 Section 17.2; their
// two-bit codes differ between versions (RFC 9369, Section 3.2).
type quicPacketType uint8

const (
	quicInitial quicPacketType = iota
	quicZeroRTT
	quicHandshake
	quicRetry
	quicVersionNegotiation // version 0 (RFC 9000, Section 17.2.1)
	quicUnknownVersion     // a long header of a version without known codes
)

// quicVersion holds what differs between QUIC versions for reading
// Initials: the salt of the Initial secret, the labels of the keys derived
// from it, and the two-bit long-header packet type codes.
type quicVersion struct {
	name              string
	salt              []byte
	keyLabel, ivLabel string
	hpLabel           string
	initial, zeroRTT  uint8
	handshake, retry  uint8
}

var quicVersions = map[uint32]*quicVersion{
	// RFC 9001, Section 5.2 and 5.1.
	QUICv1: {
		name:     "v1",
		salt:     []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a},
		keyLabel: "quic key", ivLabel: "quic iv", hpLabel: "quic hp",
		initial: 0, zeroRTT: 1, handshake: 2, retry: 3,
	},
	// RFC 9369, Sections 3.2 and 3.3.
	QUICv2: {
		name:     "v2",
		salt:     []byte{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
		keyLabel: "quicv2 key", ivLabel: "quicv2 iv", hpLabel: "quicv2 hp",
		initial: 1, zeroRTT: 2, handshake: 3, retry: 0,
	},
}

// QUICVersionName names a QUIC version for people: "v1", "v2", "draft-29",
// "grease" for the reserved 0x?a?a?a?a pattern (RFC 9000, Section 15), else
// its hex value.
func QUICVersionName(v uint32) string {
	if qv, ok := quicVersions[v]; ok {
		return qv.name
	}
	switch {
	case v == 0:
		return "negotiation"
	case v&0x0f0f0f0f == 0x0a0a0a0a:
		return "grease"
	case v>>8 == 0xff0000:
		return fmt.Sprintf("draft-%d", v&0xff)
	}
	return fmt.Sprintf("0x%08x", v)
}

// quicHeader is a parsed long header (RFC 9000, Section 17.2). Slices
// alias the datagram.
type quicHeader struct {
	first    byte // as on the wire: the low bits are still protected
	version  uint32
	typ      quicPacketType
	dcid     []byte
	scid     []byte
	token    []byte   // Initial only
	versions []uint32 // Version Negotiation only
	pnOffset int      // Initial, 0-RTT, Handshake: where the packet number starts
	length   int      // of the packet, header included, within the datagram
}

var errQUICShort = errors.New("quic: truncated long header")

// parseLongHeader parses the long-header packet at the start of b. The
// caller checked b[0]&0x80 != 0. For Retry, Version Negotiation and
// unknown versions the packet runs to the end of the datagram.
func parseLongHeader(b []byte) (quicHeader, error) {
	var h quicHeader
	if len(b) < 7 {
		return h, errQUICShort
	}
	h.first = b[0]
	h.version = binary.BigEndian.Uint32(b[1:5])
	p := 5
	cid := func() ([]byte, error) {
		if p >= len(b) {
			return nil, errQUICShort
		}
		n := int(b[p])
		p++
		if p+n > len(b) {
			return nil, errQUICShort
		}
		c := b[p : p+n]
		p += n
		return c, nil
	}
	var err error
	if h.dcid, err = cid(); err != nil {
		return h, err
	}
	if h.scid, err = cid(); err != nil {
		return h, err
	}
	h.length = len(b)
	if h.version == 0 {
		h.typ = quicVersionNegotiation
		for rest := b[p:]; len(rest) >= 4; rest = rest[4:] {
			h.versions = append(h.versions, binary.BigEndian.Uint32(rest))
		}
		return h, nil
	}
	qv := quicVersions[h.version]
	if qv == nil {
		h.typ = quicUnknownVersion
		return h, nil
	}
	if len(h.dcid) > 20 || len(h.scid) > 20 {
		// RFC 9000, Section 17.2: at most 20 bytes in versions 1 and 2.
		return h, fmt.Errorf("quic: connection ID of %d/%d bytes, more than 20", len(h.dcid), len(h.scid))
	}
	switch code := h.first >> 4 & 3; code {
	case qv.initial:
		h.typ = quicInitial
	case qv.zeroRTT:
		h.typ = quicZeroRTT
	case qv.handshake:
		h.typ = quicHandshake
	default:
		h.typ = quicRetry
		return h, nil
	}
	if h.typ == quicInitial {
		n, k := readVarint(b[p:])
		if k == 0 || uint64(len(b)-p-k) < n {
			return h, errQUICShort
		}
		p += k
		h.token = b[p : p+int(n)]
		p += int(n)
	}
	n, k := readVarint(b[p:])
	if k == 0 {
		return h, errQUICShort
	}
	p += k
	if uint64(len(b)-p) < n {
		return h, fmt.Errorf("quic: packet length %d runs past the datagram's %d bytes", n, len(b)-p)
	}
	h.pnOffset = p
	h.length = p + int(n)
	return h, nil
}

// readVarint reads a QUIC variable-length integer (RFC 9000, Section 16)
// and returns it with its length in bytes, or a length of 0 when b is too
// short.
func readVarint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v := uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}

// quicKeys protects one direction's Initial packets: AEAD_AES_128_GCM and
// AES-based header protection, whatever the version (RFC 9001, Section 5).
type quicKeys struct {
	aead cipher.AEAD
	iv   [12]byte
	hp   cipher.Block
}

// initialKeys derives the client's and the server's Initial keys from the
// Destination Connection ID of the client's first Initial (RFC 9001,
// Section 5.2; RFC 9369, Section 3.3.1).
func initialKeys(qv *quicVersion, dcid []byte) (client, server *quicKeys) {
	c, s := initialSecrets(qv, dcid)
	return qv.keys(c), qv.keys(s)
}

func initialSecrets(qv *quicVersion, dcid []byte) (client, server []byte) {
	secret := hkdf.Extract(sha256.New, dcid, qv.salt)
	return expandLabel(secret, "client in", 32), expandLabel(secret, "server in", 32)
}

// keyMaterial is the AEAD key, IV and header protection key of a secret.
func (qv *quicVersion) keyMaterial(secret []byte) (key, iv, hp []byte) {
	return expandLabel(secret, qv.keyLabel, 16), expandLabel(secret, qv.ivLabel, 12), expandLabel(secret, qv.hpLabel, 16)
}

func (qv *quicVersion) keys(secret []byte) *quicKeys {
	key, iv, hp := qv.keyMaterial(secret)
	k := &quicKeys{}
	block, _ := aes.NewCipher(key) // 16 bytes: cannot fail
	k.aead, _ = cipher.NewGCM(block)
	copy(k.iv[:], iv)
	k.hp, _ = aes.NewCipher(hp)
	return k
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context (RFC
// 8446, Section 7.1).
func expandLabel(secret []byte, label string, n int) []byte {
	info := make([]byte, 0, 4+6+len(label))
	info = append(info, byte(n>>8), byte(n), byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, 0)
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, secret, info), out); err != nil {
		panic(err) // n is far below HKDF's limit of 255 hashes
	}
	return out
}

var errQUICAuth = errors.New("quic: Initial packet does not decrypt with these keys")

// open removes header protection from the packet pkt (one packet, header
// included, as parsed into h) and decrypts it. largest is the largest
// packet number seen so far in this direction, or -1. It returns the
// plaintext payload (frames) and the full packet number. pkt is modified
// in place; on error it is restored.
func (k *quicKeys) open(pkt []byte, h *quicHeader, largest int64) ([]byte, int64, error) {
	pn := h.pnOffset
	if len(pkt) < pn+4+16 {
		return nil, 0, fmt.Errorf("quic: Initial packet of %d bytes is too short to sample", len(pkt))
	}
	var mask [16]byte
	k.hp.Encrypt(mask[:], pkt[pn+4:pn+4+16])
	first := pkt[0] ^ mask[0]&0x0f
	pnLen := int(first&3) + 1
	var saved [5]byte
	saved[0] = pkt[0]
	copy(saved[1:], pkt[pn:pn+4])
	restore := func() {
		pkt[0] = saved[0]
		copy(pkt[pn:pn+4], saved[1:])
	}
	pkt[0] = first
	var truncated uint64
	for i := range pnLen {
		pkt[pn+i] ^= mask[1+i]
		truncated = truncated<<8 | uint64(pkt[pn+i])
	}
	full := decodePacketNumber(largest, truncated, pnLen)
	nonce := k.iv
	for i := range 8 {
		nonce[11-i] ^= byte(uint64(full) >> (8 * i))
	}
	hdr := pkt[:pn+pnLen]
	// Decrypt into a copy: the payload must stay intact in case these are
	// the wrong keys and the caller tries others.
	plain, err := k.aead.Open(nil, nonce[:], pkt[pn+pnLen:], hdr)
	if err != nil {
		restore()
		return nil, 0, errQUICAuth
	}
	restore()
	return plain, full, nil
}

// decodePacketNumber recovers a full packet number from its truncated
// form (RFC 9000, Appendix A.3).
func decodePacketNumber(largest int64, truncated uint64, pnLen int) int64 {
	expected := largest + 1
	win := int64(1) << (8 * pnLen)
	half := win / 2
	candidate := expected&^(win-1) | int64(truncated)
	switch {
	case candidate <= expected-half && candidate < 1<<62-win:
		return candidate + win
	case candidate > expected+half && candidate >= win:
		return candidate - win
	}
	return candidate
}

// QUIC frame types that may appear in Initial packets (RFC 9000, Section
// 12.4, Table 3).
const (
	frameQUICPadding  = 0x00
	frameQUICPing     = 0x01
	frameQUICAck      = 0x02
	frameQUICAckECN   = 0x03
	frameQUICCrypto   = 0x06
	frameQUICClose    = 0x1c
	frameQUICAppClose = 0x1d
)

// cryptoFrame is the data of one CRYPTO frame.
type cryptoFrame struct {
	offset uint64
	data   []byte
}

// quicFrames walks the frames of a decrypted Initial payload and calls fn
// for each CRYPTO frame. It returns an error for a frame type that an
// Initial packet cannot carry, or a frame cut short.
func quicFrames(payload []byte, fn func(cryptoFrame)) error {
	b := payload
	next := func() (uint64, bool) {
		v, n := readVarint(b)
		if n == 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	short := func(what string) error {
		return fmt.Errorf("quic: %s frame cut short at payload offset %d", what, len(payload)-len(b))
	}
	for len(b) > 0 {
		typ, ok := next()
		if !ok {
			return short("a")
		}
		switch typ {
		case frameQUICPadding, frameQUICPing:
		case frameQUICAck, frameQUICAckECN:
			var ranges uint64
			for i := range 4 { // largest, delay, range count, first range
				v, ok := next()
				if !ok {
					return short("ACK")
				}
				if i == 2 {
					ranges = v
				}
			}
			if ranges > uint64(len(b)) {
				return short("ACK")
			}
			extra := 2 * ranges
			if typ == frameQUICAckECN {
				extra += 3
			}
			for range extra {
				if _, ok := next(); !ok {
					return short("ACK")
				}
			}
		case frameQUICCrypto:
			off, ok1 := next()
			n, ok2 := next()
			if !ok1 || !ok2 || uint64(len(b)) < n {
				return short("CRYPTO")
			}
			fn(cryptoFrame{offset: off, data: b[:n]})
			b = b[n:]
		case frameQUICClose, frameQUICAppClose:
			if _, ok := next(); !ok { // error code
				return short("CONNECTION_CLOSE")
			}
			if typ == frameQUICClose {
				if _, ok := next(); !ok { // frame type
					return short("CONNECTION_CLOSE")
				}
			}
			n, ok := next()
			if !ok || uint64(len(b)) < n {
				return short("CONNECTION_CLOSE")
			}
			b = b[n:]
		default:
			return fmt.Errorf("quic: frame type %#x at payload offset %d is not allowed in an Initial packet", typ, len(payload)-len(b)-1)
		}
	}
	return nil
}
