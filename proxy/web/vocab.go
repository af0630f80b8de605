package web

import (
	"hash/maphash"
	"reflect"
	"strings"
)

// Bounds of the vocabulary: at most vocabChunks×vocabChunk strings and as
// many lists, of at most vocabBytes in all. When it is full, new values
// are packed inline: records stay right, only larger.
const (
	vocabChunk  = 1024
	vocabChunks = 64
	vocabBytes  = 4 << 20
	// seenMax bounds the values seen once and not yet in the vocabulary
	// (admit), by their hashes.
	seenMax = 4096
)

// vocab holds the strings and lists that packed records name by index,
// shared by all the records of one history. It is append-only: an index,
// once given, names its value for good.
//
// Only the packer adds, under its lock. Unpackers read without a lock: a
// value is in place before any packed record that names it is published,
// and the history's lock orders that publication before every read of
// the record; the chunks are fixed arrays, so an add never moves what a
// reader reads.
type vocab struct {
	strs  [vocabChunks]*[vocabChunk]string
	lists [vocabChunks]*[vocabChunk]listEntry

	// The packer's own, under its lock.
	nStrs, nLists int
	strIdx        map[string]uint32
	listIdx       map[string]uint32 // by the list's key: its type's number and its canonical bytes
	size          int               // bytes of the strings and list keys held
	seen          map[uint64]struct{}
	seed          maphash.Seed
}

// listEntry is a list of the vocabulary: a slice of type typ.
type listEntry struct {
	typ reflect.Type
	sliceHeader
}

func newVocab() *vocab {
	return &vocab{strIdx: map[string]uint32{}, listIdx: map[string]uint32{}, seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
}

// admit says whether a value not in the vocabulary goes in now: when
// there is room and it was seen before, lately. A value seen once stays
// inline; one that recurs is shared from its second time on.
func (v *vocab) admit(h uint64, size int, n int) bool {
	if n >= vocabChunks*vocabChunk || v.size+size > vocabBytes {
		return false
	}
	if _, ok := v.seen[h]; ok {
		delete(v.seen, h)
		return true
	}
	if len(v.seen) >= seenMax {
		clear(v.seen)
	}
	v.seen[h] = struct{}{}
	return false
}

// str returns s's index, adding s when admit says so.
func (v *vocab) str(s string) (uint32, bool) {
	if i, ok := v.strIdx[s]; ok {
		return i, true
	}
	if !v.admit(maphash.String(v.seed, s), len(s), v.nStrs) {
		return 0, false
	}
	i := uint32(v.nStrs)
	c := &v.strs[i/vocabChunk]
	if *c == nil {
		*c = new([vocabChunk]string)
	}
	s = strings.Clone(s) // not the record's memory: the vocabulary outlives it
	(*c)[i%vocabChunk] = s
	v.strIdx[s] = i
	v.nStrs++
	v.size += len(s)
	return i, true
}

// list returns the index of the list whose key is key, adding it when
// admit says so; p is the list's plan, canon the key's bytes after the
// type's number (the list's canonical form).
func (v *vocab) list(p *plan, key, canon []byte) (uint32, bool) {
	if i, ok := v.listIdx[string(key)]; ok {
		return i, true
	}
	if !v.admit(maphash.Bytes(v.seed, key), len(key), v.nLists) {
		return 0, false
	}
	k := string(key)
	var l listEntry
	d := decoder{p: k[len(key)-len(canon):]} // strings of the list share its key's bytes
	d.slice(p, &l.sliceHeader)
	if d.err != nil || d.off != len(d.p) {
		return 0, false // a list its own packing cannot read back: never shared
	}
	l.typ = p.typ
	i := uint32(v.nLists)
	c := &v.lists[i/vocabChunk]
	if *c == nil {
		*c = new([vocabChunk]listEntry)
	}
	(*c)[i%vocabChunk] = l
	v.listIdx[k] = i
	v.nLists++
	v.size += len(k)
	return i, true
}

// strAt is the string at index i, for an unpacker.
func (v *vocab) strAt(i uint64) (string, bool) {
	if i >= vocabChunks*vocabChunk {
		return "", false
	}
	c := v.strs[i/vocabChunk]
	if c == nil {
		return "", false
	}
	return c[i%vocabChunk], true
}

// listAt is the list at index i, for an unpacker.
func (v *vocab) listAt(i uint64) (listEntry, bool) {
	if i >= vocabChunks*vocabChunk {
		return listEntry{}, false
	}
	c := v.lists[i/vocabChunk]
	if c == nil || c[i%vocabChunk].typ == nil {
		return listEntry{}, false
	}
	return c[i%vocabChunk], true
}
