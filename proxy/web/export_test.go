package web

import "github.com/tlsresume/tlsresume/inspect"

// Packer is the history's record codec (pack.go), for the tests of package
// web_test.
type Packer struct{ k *packer }

// NewPacker returns a codec with an empty vocabulary of its own.
func NewPacker() *Packer { return &Packer{newPacker()} }

func (p *Packer) Pack(r *inspect.ConnRecord) string { return p.k.pack(r) }

func (p *Packer) Unpack(s string) (*inspect.ConnRecord, error) { return p.k.unpack(s) }

func (p *Packer) UnpackInto(s string, r *inspect.ConnRecord) error { return p.k.unpackInto(s, r) }
