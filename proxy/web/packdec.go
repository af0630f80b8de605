package web

import (
	"fmt"
	"math"
	"reflect"
	"time"
	"unsafe"

	"github.com/tlsresume/tlsresume/inspect"
)

// unpack returns the record p holds, a new one: the caller's to keep. Its
// strings share p's bytes and the vocabulary's; its lists from the
// vocabulary are shared by other records: read them, never change them.
func (k *packer) unpack(p string) (*inspect.ConnRecord, error) {
	r := new(inspect.ConnRecord)
	return r, k.unpackInto(p, r)
}

// unpackInto unpacks p into r, reusing the structs r points to: a reader
// that goes through many records makes little garbage, and keeps none of
// r's pointers past its next call.
func (k *packer) unpackInto(p string, r *inspect.ConnRecord) error {
	d := decoder{p: p, voc: k.voc}
	id := d.raw()
	d.structure(k.plan, unsafe.Pointer(r))
	r.ID = id
	if d.err == nil && d.off != len(p) {
		d.fail("bytes after the record")
	}
	return d.err
}

// decoder reads values from p; voc nil reads a list's canonical form. Its
// first error ends the reading (every read after it gives zero values).
type decoder struct {
	p   string
	off int
	voc *vocab
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("web: unpacking a record: %s at byte %d of %d", what, d.off, len(d.p))
	}
	d.off = len(d.p)
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		if d.off >= len(d.p) {
			d.fail("a number cut short")
			return 0
		}
		b := d.p[d.off]
		d.off++
		if b < 0x80 {
			if shift == 63 && b > 1 {
				break
			}
			return x | uint64(b)<<shift
		}
		x |= uint64(b&0x7f) << shift
	}
	d.fail("a number too large")
	return 0
}

func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// bytes returns the next n bytes, sharing p's memory.
func (d *decoder) bytes(n uint64) string {
	if n > uint64(len(d.p)-d.off) {
		d.fail(fmt.Sprintf("%d bytes, past the end", n))
		return ""
	}
	s := d.p[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// raw reads a uvarint length and as many bytes: the record's id.
func (d *decoder) raw() string { return d.bytes(d.uvarint()) }

// structure reads the struct at v, setting every field: those not in the
// bitmap to zero, so that a struct reused (unpackInto) keeps nothing of
// before. Derived fields are made last, from the others, in field order.
func (d *decoder) structure(p *plan, v unsafe.Pointer) {
	bitmap := d.bytes(uint64(p.bits+7) / 8)
	if len(bitmap) < (p.bits+7)/8 {
		return // failed: v keeps what it has, and the error says so
	}
	derived := false
	for i := range p.fields {
		f := &p.fields[i]
		fv := unsafe.Add(v, f.offset)
		switch {
		case f.key:
		case f.bit < 0:
			d.structure(f.plan, fv)
		case bitmap[f.bit/8]&(1<<(f.bit%8)) == 0:
			setZero(f.plan, fv)
		case f.plan.kind == kindBool:
			*(*bool)(fv) = true
		case f.derive != nil:
			tag := d.uvarint()
			if tag == derivedMark {
				*(*string)(fv), derived = "", true // made below
				continue
			}
			*(*string)(fv) = d.strTagged(tag)
		default:
			d.value(f.plan, fv)
		}
	}
	if !derived || d.err != nil {
		return
	}
	for i := range p.fields {
		f := &p.fields[i]
		if f.derive == nil || bitmap[f.bit/8]&(1<<(f.bit%8)) == 0 {
			continue
		}
		if fv := (*string)(unsafe.Add(v, f.offset)); *fv == "" { // marked: present, yet empty
			*fv = f.derive(v)
		}
	}
}

// setZero sets the value at v, which is not a struct, to its zero.
func setZero(p *plan, v unsafe.Pointer) {
	switch p.kind {
	case kindBool:
		*(*bool)(v) = false
	case kindInt, kindUint, kindFloat:
		setBits(p, v, 0)
	case kindString:
		*(*string)(v) = ""
	case kindTime:
		*(*time.Time)(v) = time.Time{}
	case kindPtr:
		*(*unsafe.Pointer)(v) = nil
	case kindSlice:
		*(*sliceHeader)(v) = sliceHeader{}
	}
}

// setBits stores the low p.size bytes of x at v: an integer, or a float's
// bits.
func setBits(p *plan, v unsafe.Pointer, x uint64) {
	switch p.size {
	case 1:
		*(*uint8)(v) = uint8(x)
	case 2:
		*(*uint16)(v) = uint16(x)
	case 4:
		*(*uint32)(v) = uint32(x)
	default:
		*(*uint64)(v) = x
	}
}

// value reads a value that is there into v.
func (d *decoder) value(p *plan, v unsafe.Pointer) {
	switch p.kind {
	case kindBool:
		*(*bool)(v) = d.bytes(1) == "\x01"
	case kindInt:
		setBits(p, v, uint64(d.varint()))
	case kindUint:
		setBits(p, v, d.uvarint())
	case kindFloat:
		f := d.float()
		if p.size == 4 {
			setBits(p, v, uint64(math.Float32bits(float32(f))))
		} else {
			setBits(p, v, math.Float64bits(f))
		}
	case kindString:
		*(*string)(v) = d.str()
	case kindTime:
		d.time((*time.Time)(v))
	case kindStruct:
		d.structure(p, v)
	case kindPtr:
		target := (*unsafe.Pointer)(v)
		if *target == nil {
			*target = reflect.New(p.elem.typ).UnsafePointer()
		}
		d.value(p.elem, *target)
	case kindSlice:
		d.slice(p, (*sliceHeader)(v))
	}
}

// float reads a float (see encoder.float).
func (d *decoder) float() float64 {
	tag := d.uvarint()
	if tag&1 == 0 {
		u := tag >> 1
		return float64(int64(u>>1)^-int64(u&1)) / 1000
	}
	if tag != 1 {
		d.fail("a float's tag")
		return 0
	}
	var bits uint64
	for i, c := range []byte(d.bytes(8)) {
		bits |= uint64(c) << (8 * i)
	}
	return math.Float64frombits(bits)
}

// element reads a slice's element (see encoder.element).
func (d *decoder) element(p *plan, v unsafe.Pointer) {
	if p.kind == kindPtr || p.kind == kindSlice {
		if d.bytes(1) != "\x01" {
			setZero(p, v)
			return
		}
	}
	d.value(p, v)
}

func (d *decoder) str() string { return d.strTagged(d.uvarint()) }

// strTagged reads a string whose tag was read.
func (d *decoder) strTagged(tag uint64) string {
	switch {
	case tag&1 == 0:
		if d.voc != nil {
			if s, ok := d.voc.strAt(tag >> 1); ok {
				return s
			}
		}
		d.fail(fmt.Sprintf("no string %d in the vocabulary", tag>>1))
		return ""
	case tag&3 == 1:
		return d.bytes(tag >> 2)
	default:
		return hexOf(d.bytes(tag >> 2))
	}
}

const hexDigits = "0123456789abcdef"

// hexOf is b in lowercase hex, in one allocation.
func hexOf(b string) string {
	var stack [128]byte // randoms and session ids: 32 bytes
	out := stack[:0]
	if 2*len(b) > len(stack) {
		out = make([]byte, 0, 2*len(b))
	}
	for i := range len(b) {
		out = append(out, hexDigits[b[i]>>4], hexDigits[b[i]&15])
	}
	return string(out)
}

// maxZoneOffset bounds a time's zone offset: a day, either way.
const maxZoneOffset = 24 * 60 * 60

func (d *decoder) time(t *time.Time) {
	sec, nsec, off := d.varint(), d.uvarint(), d.varint()
	if nsec >= 1e9 || off < -maxZoneOffset || off > maxZoneOffset {
		d.fail("a time out of range")
		return
	}
	u := time.Unix(sec, int64(nsec))
	*t = u.In(zone(u, int(off)))
}

// zone is where a time with offset off is shown: the local zone when it
// has that offset then (as time.Parse does), else UTC or a fixed zone.
func zone(t time.Time, off int) *time.Location {
	if _, local := t.In(time.Local).Zone(); local == off {
		return time.Local
	}
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

func (d *decoder) slice(p *plan, h *sliceHeader) {
	tag := d.uvarint()
	if tag&1 == 0 {
		if d.voc != nil {
			if l, ok := d.voc.listAt(tag >> 1); ok && l.typ == p.typ {
				*h = l.sliceHeader
				return
			}
		}
		d.fail(fmt.Sprintf("no list %d of %s in the vocabulary", tag>>1, p.typ))
		return
	}
	n := tag >> 1
	if n > uint64(len(d.p)-d.off) { // each element takes a byte at least
		d.fail(fmt.Sprintf("%d elements, past the end", n))
		return
	}
	s := reflect.MakeSlice(p.typ, int(n), int(n)).UnsafePointer() // not nil, even empty
	for i := range uintptr(n) {
		d.element(p.elem, unsafe.Add(s, i*p.elem.size))
	}
	*h = sliceHeader{data: s, len: int(n), cap: int(n)}
}
