package web

import (
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/tlsresume/tlsresume/inspect"
)

// The history keeps each record packed: a binary form of
// inspect.ConnRecord of a few hundred bytes, where the Go structs take
// some 2.4 KB. Readers unpack what they need, in a few microseconds.
//
// The codec is driven by reflection over the record's types, planned once
// (plan), so a field added to the record is packed with no change here;
// TestPackPlan fails for a kind it cannot pack. Packing and unpacking then
// read and write fields at the plan's offsets (unsafe.Add), not through
// reflect.Value, which took a third of the time. A packed record is:
//
//   - the record's id: a uvarint length and its bytes (keyOf reads it
//     without unpacking, and the history's index shares those bytes);
//   - then the record as a struct. A struct is a bitmap with one bit per
//     field, nested structs excepted (set: the field is not zero — true, a
//     pointer or slice not nil, a string not empty), then, in field order,
//     each nested struct and each set field's value. A bool is its bit.
//
// Values: integers are varints (signed ones zigzag), a float a varint of
// its thousandths when it is a whole number of them (milliseconds to the
// microsecond), else its 8 bytes; a time its Unix seconds, nanoseconds and zone offset (its JSON comes out
// the same), a pointer its target. A string is a uvarint tag: even, an
// index into the vocabulary (tag>>1); tag&3 == 1, tag>>2 bytes follow;
// tag&3 == 3, tag>>2 bytes follow that stand for their lowercase hex (a
// random, a session id). A slice is a uvarint tag too: even, an index into
// the vocabulary's lists; odd, tag>>1 elements follow, each a value (a
// pointer or slice element after a byte saying whether it is nil, a bool
// as a byte). Inside a slice's elements, strings are never looked up in
// the vocabulary: the elements are the list's key (vocab.go).
//
// Strings and lists that recur (cipher suites, extensions, JA4, verdict
// words) go in the vocabulary, shared by all records; a record's own values
// (inlineFields) never do. A string that the rest of its struct determines
// (derivedFields: JA3) is the tag derivedMark when it is not in the
// vocabulary, and made again.

// kind is how a value is packed.
type kind uint8

const (
	kindBool kind = iota + 1
	kindInt
	kindUint
	kindFloat
	kindString
	kindTime
	kindStruct
	kindPtr
	kindSlice
)

// plan is how values of one Go type are packed, worked out once.
type plan struct {
	kind   kind
	typ    reflect.Type
	size   uintptr     // typ.Size(): an integer's width, a slice element's stride
	fields []fieldPlan // kindStruct: its fields, in order
	bits   int         // kindStruct: presence bits (fields less nested structs)
	elem   *plan       // kindPtr: the target; kindSlice: the element
	list   uint64      // kindSlice: names its type's lists in the vocabulary
}

// fieldPlan is one field of a struct.
type fieldPlan struct {
	offset uintptr // from the struct's start
	name   string  // Type.Field
	bit    int     // its presence bit; -1 for a nested struct, always written
	plan   *plan
	inline bool // a string of the record's own: never in the vocabulary
	key    bool // the record's id, packed first (keyOf), not in its struct
	// derive makes a string field from its struct (derivedFields).
	derive func(unsafe.Pointer) string
}

// inlineFields are string fields whose values are one record's own
// (connection ids, addresses with the client's port, randoms, session ids,
// connection ids of QUIC): looking them up in the vocabulary would only
// fill it. Other strings that turn out unique stay inline all the same
// (vocab.admit); this saves them the look-up.
var inlineFields = []string{
	"Record.ClientAddr",
	"ClientHelloRecord.Random", "ClientHelloRecord.SessionID",
	"ServerHelloRecord.SessionID",
	"QUICFacts.DCID", "QUICFacts.SCID", "QUICFacts.ServerSCID", "QUICRetry.SCID",
	"ClientLeg.TicketFrom", "UpstreamLeg.SessionFrom", "UpstreamLeg.ReusedConn", "ConnRecord.AfterQUIC", "QUICFallback.TCPConn",
	"Mirrored.From", "ClientCert.FromSession",
}

// recordKey is the record's id field, packed first.
const recordKey = "ConnRecord.ID"

// recordPlan is inspect.ConnRecord's plan, made once.
var recordPlan = sync.OnceValues(func() (*plan, error) {
	return newPlan(reflect.TypeFor[inspect.ConnRecord](), planSpec{key: recordKey, inline: inlineFields, derived: derivedFields})
})

// planSpec names a record type's fields that are packed apart, each
// "Type.Field" and a string field: the key, packed first; the inline ones,
// never looked up in the vocabulary; the derived ones, made again from
// their struct when they can be.
type planSpec struct {
	key     string
	inline  []string
	derived map[string]func(unsafe.Pointer) string
}

var timeType = reflect.TypeFor[time.Time]()

// planner makes the plans of a type and the types it holds.
type planner struct {
	spec   planSpec
	inline map[string]bool
	used   map[string]bool // of the spec's fields, those seen
	busy   map[reflect.Type]bool
	lists  map[reflect.Type]uint64 // slice types, numbered from 1
}

// newPlan plans t, a struct type, with the fields spec names (each must
// exist). An error names a field of a kind the codec cannot pack.
func newPlan(t reflect.Type, spec planSpec) (*plan, error) {
	pl := &planner{spec: spec, inline: map[string]bool{}, used: map[string]bool{},
		busy: map[reflect.Type]bool{}, lists: map[reflect.Type]uint64{}}
	for _, name := range spec.inline {
		pl.inline[name] = true
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("web: packing %s: a record must be a struct", t)
	}
	p, err := pl.plan(t, t.Name())
	if err != nil {
		return nil, err
	}
	names := append([]string{spec.key}, spec.inline...)
	for name := range spec.derived {
		names = append(names, name)
	}
	for _, name := range names {
		if !pl.used[name] {
			return nil, fmt.Errorf("web: packing %s: no string field %s", t, name)
		}
	}
	return p, nil
}

func (pl *planner) plan(t reflect.Type, path string) (*plan, error) {
	p := &plan{typ: t, size: t.Size()}
	switch t.Kind() {
	case reflect.Bool:
		p.kind = kindBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.kind = kindInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		p.kind = kindUint
	case reflect.Float32, reflect.Float64:
		p.kind = kindFloat
	case reflect.String:
		p.kind = kindString
	case reflect.Pointer, reflect.Slice:
		p.kind = kindPtr
		if t.Kind() == reflect.Slice {
			p.kind = kindSlice
			if pl.lists[t] == 0 {
				pl.lists[t] = uint64(len(pl.lists) + 1)
			}
			p.list = pl.lists[t]
		}
		elem, err := pl.plan(t.Elem(), path+"[]")
		if err != nil {
			return nil, err
		}
		p.elem = elem
	case reflect.Struct:
		if t == timeType {
			p.kind = kindTime
			return p, nil
		}
		return p, pl.structure(p, path)
	default:
		return nil, fmt.Errorf("web: packing %s: a %s, which the record codec cannot pack (add it to pack.go)", path, t)
	}
	return p, nil
}

func (pl *planner) structure(p *plan, path string) error {
	t := p.typ
	if pl.busy[t] {
		return fmt.Errorf("web: packing %s: %s holds itself, which the record codec cannot pack", path, t)
	}
	pl.busy[t] = true
	defer delete(pl.busy, t)
	p.kind = kindStruct
	for i := range t.NumField() {
		sf := t.Field(i)
		fpath := path + "." + sf.Name
		if !sf.IsExported() {
			return fmt.Errorf("web: packing %s: an unexported field, which the record codec cannot set", fpath)
		}
		fp, err := pl.plan(sf.Type, fpath)
		if err != nil {
			return err
		}
		f := fieldPlan{offset: sf.Offset, name: t.Name() + "." + sf.Name, bit: -1, plan: fp}
		if fp.kind == kindString {
			f.inline, f.key = pl.inline[f.name] || f.name == pl.spec.key, f.name == pl.spec.key
			f.derive = pl.spec.derived[f.name]
			if f.inline || f.derive != nil {
				pl.used[f.name] = true
			}
		}
		if fp.kind != kindStruct && !f.key {
			f.bit = p.bits
			p.bits++
		}
		p.fields = append(p.fields, f)
	}
	return nil
}
