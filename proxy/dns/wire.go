package dns

import (
	"encoding/binary"
	"fmt"
)

// checkQuery walks the structure of a DNS message of at least 12 bytes
// (RFC 1035, Section 4.1) without parsing it: the sections must hold exactly
// the records the header counts and end where the message ends, and the
// message must be at most maxQuery bytes. Names are only skipped (a pointer
// ends one); miekg/dns validates them when it parses.
func checkQuery(m []byte) error {
	if len(m) > maxQuery {
		return fmt.Errorf("dns: query of %d bytes, more than %d", len(m), maxQuery)
	}
	qd := int(binary.BigEndian.Uint16(m[4:]))
	rrs := int(binary.BigEndian.Uint16(m[6:])) + int(binary.BigEndian.Uint16(m[8:])) + int(binary.BigEndian.Uint16(m[10:]))
	off := 12
	var err error
	for i := 0; i < qd+rrs; i++ {
		if off, err = skipName(m, off); err != nil {
			return fmt.Errorf("dns: record %d: %w", i, err)
		}
		fixed := 4 // QTYPE, QCLASS
		if i >= qd {
			fixed = 10 // TYPE, CLASS, TTL, RDLENGTH
		}
		if off+fixed > len(m) {
			return fmt.Errorf("dns: record %d cut short at offset %d", i, off)
		}
		if i >= qd {
			off += fixed + int(binary.BigEndian.Uint16(m[off+8:]))
			if off > len(m) {
				return fmt.Errorf("dns: record %d: rdata runs past the end (%d bytes)", i, len(m))
			}
		} else {
			off += fixed
		}
	}
	if off != len(m) {
		return fmt.Errorf("dns: %d bytes after the last record at offset %d", len(m)-off, off)
	}
	return nil
}

// skipName returns the offset just after the name at off.
func skipName(m []byte, off int) (int, error) {
	for {
		if off >= len(m) {
			return 0, fmt.Errorf("name cut short at offset %d", off)
		}
		c := int(m[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xC0: // compression pointer: the name ends here
			if off+2 > len(m) {
				return 0, fmt.Errorf("pointer cut short at offset %d", off)
			}
			return off + 2, nil
		default: // 0x40 and 0x80: extended label types, unused (RFC 6891, Section 5)
			return 0, fmt.Errorf("label type %#x at offset %d", c&0xC0, off)
		}
	}
}
