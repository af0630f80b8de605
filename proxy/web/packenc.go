package web

import (
	"encoding/binary"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/tlsresume/tlsresume/inspect"
)

// packer packs records for one history, into its vocabulary, and unpacks
// them. Pack takes its lock; unpacking takes none.
type packer struct {
	plan *plan
	voc  *vocab
	mu   sync.Mutex
	enc  encoder
}

func newPacker() *packer {
	p, err := recordPlan()
	if err != nil {
		panic(err) // a record field the codec cannot pack: TestPackPlan says which
	}
	voc := newVocab()
	return &packer{plan: p, voc: voc, enc: encoder{voc: voc}}
}

// pack returns r packed: its id, then its fields (see pack.go).
func (k *packer) pack(r *inspect.ConnRecord) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := &k.enc
	e.buf = e.buf[:0]
	e.uvarint(uint64(len(r.ID)))
	e.buf = append(e.buf, r.ID...)
	e.structure(k.plan, unsafe.Pointer(r))
	out := string(e.buf)
	if cap(e.buf) > 64<<10 { // one huge record: do not keep its buffer
		e.buf = nil
	}
	return out
}

// keyOf is a packed record's id, sharing its bytes.
func keyOf(p string) string {
	d := decoder{p: p}
	return d.raw()
}

// encoder appends values to buf. With voc nil it writes a list's
// canonical form: no vocabulary references.
//
// It reads values through their plans' offsets and sizes (unsafe.Add
// from a struct's address): reflect.Value.Field cost a third of the time.
type encoder struct {
	buf []byte
	voc *vocab
	key []byte // a list's key, while it is looked up
}

func (e *encoder) uvarint(x uint64) { e.buf = binary.AppendUvarint(e.buf, x) }
func (e *encoder) varint(x int64)   { e.buf = binary.AppendVarint(e.buf, x) }

// structure writes the struct at v: its bitmap, then its nested structs
// and set fields.
func (e *encoder) structure(p *plan, v unsafe.Pointer) {
	at := len(e.buf)
	for range (p.bits + 7) / 8 {
		e.buf = append(e.buf, 0)
	}
	for i := range p.fields {
		f := &p.fields[i]
		fv := unsafe.Add(v, f.offset)
		switch {
		case f.key:
		case f.bit < 0:
			e.structure(f.plan, fv)
		case !isZero(f.plan, fv):
			e.buf[at+f.bit/8] |= 1 << (f.bit % 8)
			switch {
			case f.plan.kind == kindBool: // the bit says it
			case f.inline:
				e.str(*(*string)(fv), true)
			case f.derive != nil:
				e.derivable(*(*string)(fv), f.derive, v)
			default:
				e.value(f.plan, fv)
			}
		}
	}
}

// isZero says whether the value at v is left out of its struct.
func isZero(p *plan, v unsafe.Pointer) bool {
	switch p.kind {
	case kindBool:
		return !*(*bool)(v)
	case kindInt:
		return intAt(p, v) == 0
	case kindUint:
		return uintAt(p, v) == 0
	case kindFloat:
		return math.Float64bits(floatAt(p, v)) == 0 // -0 is kept
	case kindString:
		return len(*(*string)(v)) == 0
	case kindTime:
		return *(*time.Time)(v) == time.Time{}
	case kindPtr:
		return *(*unsafe.Pointer)(v) == nil
	default: // kindSlice
		return (*sliceHeader)(v).data == nil
	}
}

// sliceHeader is how Go lays out a slice of any type (unsafe.Slice,
// reflect's SliceHeader).
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

func intAt(p *plan, v unsafe.Pointer) int64 {
	switch p.size {
	case 1:
		return int64(*(*int8)(v))
	case 2:
		return int64(*(*int16)(v))
	case 4:
		return int64(*(*int32)(v))
	default:
		return *(*int64)(v)
	}
}

func uintAt(p *plan, v unsafe.Pointer) uint64 {
	switch p.size {
	case 1:
		return uint64(*(*uint8)(v))
	case 2:
		return uint64(*(*uint16)(v))
	case 4:
		return uint64(*(*uint32)(v))
	default:
		return *(*uint64)(v)
	}
}

func floatAt(p *plan, v unsafe.Pointer) float64 {
	if p.size == 4 {
		return float64(*(*float32)(v))
	}
	return *(*float64)(v)
}

// value writes the value at v, which is there: a pointer's target, a
// slice.
func (e *encoder) value(p *plan, v unsafe.Pointer) {
	switch p.kind {
	case kindBool:
		b := byte(0)
		if *(*bool)(v) {
			b = 1
		}
		e.buf = append(e.buf, b)
	case kindInt:
		e.varint(intAt(p, v))
	case kindUint:
		e.uvarint(uintAt(p, v))
	case kindFloat:
		e.float(floatAt(p, v))
	case kindString:
		e.str(*(*string)(v), false)
	case kindTime:
		t := (*time.Time)(v)
		_, off := t.Zone()
		e.varint(t.Unix())
		e.uvarint(uint64(t.Nanosecond()))
		e.varint(int64(off))
	case kindStruct:
		e.structure(p, v)
	case kindPtr:
		e.value(p.elem, *(*unsafe.Pointer)(v))
	case kindSlice:
		e.slice(p, (*sliceHeader)(v))
	}
}

// float writes f: a whole number of thousandths (the proxy's times in
// milliseconds, to the microsecond) as that number, zigzag, shifted left
// with a 0 bit; else a 1 and its 8 bytes.
func (e *encoder) float(f float64) {
	if n, ok := thousandths(f); ok {
		e.uvarint(uint64(n<<1^n>>63) << 1)
		return
	}
	e.buf = append(e.buf, 1)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, math.Float64bits(f))
}

// thousandths returns n when f is exactly float64(n)/1000, as the decoder
// computes it.
func thousandths(f float64) (int64, bool) {
	const most = 1 << 53 // integers a float64 holds exactly
	x := math.Round(f * 1000)
	if !(x > -most && x < most) { // NaN, too large
		return 0, false
	}
	n := int64(x)
	return n, math.Float64bits(float64(n)/1000) == math.Float64bits(f)
}

// element writes a slice's element: pointers and slices after a byte
// saying whether they are nil.
func (e *encoder) element(p *plan, v unsafe.Pointer) {
	if p.kind == kindPtr || p.kind == kindSlice {
		if isZero(p, v) {
			e.buf = append(e.buf, 0)
			return
		}
		e.buf = append(e.buf, 1)
	}
	e.value(p, v)
}

// str writes s: by its index in the vocabulary when it is there (or goes
// in now), else inline; lowercase hex of even length as its bytes.
func (e *encoder) str(s string, inline bool) {
	if e.voc != nil && !inline && s != "" {
		if i, ok := e.voc.str(s); ok {
			e.uvarint(uint64(i) << 1)
			return
		}
	}
	if !isHex(s) {
		e.uvarint(uint64(len(s))<<2 | 1)
		e.buf = append(e.buf, s...)
		return
	}
	e.uvarint(uint64(len(s)/2)<<2 | 3)
	for i := 0; i < len(s); i += 2 {
		e.buf = append(e.buf, unhex(s[i])<<4|unhex(s[i+1]))
	}
}

// derivable writes s, which derive may make from owner, its struct: by
// its index in the vocabulary when it is there (or goes in now), else as
// derivedMark when derive gives s, else inline.
func (e *encoder) derivable(s string, derive func(unsafe.Pointer) string, owner unsafe.Pointer) {
	if e.voc != nil {
		if i, ok := e.voc.str(s); ok {
			e.uvarint(uint64(i) << 1)
			return
		}
	}
	if derive(owner) == s {
		e.uvarint(derivedMark)
		return
	}
	e.str(s, true)
}

func isHex(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// slice writes a slice that is not nil: by its index in the vocabulary
// when its canonical form is there (or goes in now), else that form.
func (e *encoder) slice(p *plan, h *sliceHeader) {
	if e.voc == nil {
		e.list(p, h)
		return
	}
	k := encoder{buf: e.key[:0]}
	k.uvarint(p.list)
	at := len(k.buf)
	k.list(p, h)
	e.key = k.buf
	if i, ok := e.voc.list(p, k.buf, k.buf[at:]); ok {
		e.uvarint(uint64(i) << 1)
		return
	}
	e.buf = append(e.buf, k.buf[at:]...)
}

// list writes a slice's canonical form: its length, then its elements.
func (e *encoder) list(p *plan, h *sliceHeader) {
	e.uvarint(uint64(h.len)<<1 | 1)
	for i := range h.len {
		e.element(p.elem, unsafe.Add(h.data, uintptr(i)*p.elem.size))
	}
}
