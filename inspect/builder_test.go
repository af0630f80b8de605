package inspect

import (
	"golang.org/x/crypto/cryptobyte"
)

// testHello describes a ClientHello to build byte by byte, so tests can
// produce shapes that no single client on this machine sends.
type testHello struct {
	version    uint16
	random     byte // every byte of random
	sessionID  []byte
	ciphers    []uint16
	extensions []testExt
}

type testExt struct {
	typ  uint16
	data []byte
}

func (h testHello) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(typeClientHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		v := h.version
		if v == 0 {
			v = VersionTLS12
		}
		b.AddUint16(v)
		for range 32 {
			b.AddUint8(h.random)
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, c := range h.ciphers {
				b.AddUint16(c)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		if h.extensions == nil {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range h.extensions {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
			}
		})
	})
	return b.BytesOrPanic()
}

// Extension bodies.

func extSNI(name string) testExt {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint8(0)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
	})
	return testExt{ExtServerName, b.BytesOrPanic()}
}

func extALPN(protos ...string) testExt {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range protos {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(p)) })
		}
	})
	return testExt{ExtALPN, b.BytesOrPanic()}
}

func extU16List8(typ uint16, vs ...uint16) testExt {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(v)
		}
	})
	return testExt{typ, b.BytesOrPanic()}
}

func extU16List16(typ uint16, vs ...uint16) testExt {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(v)
		}
	})
	return testExt{typ, b.BytesOrPanic()}
}

func extKeyShare(groups ...uint16) testExt {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, g := range groups {
			b.AddUint16(g)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
		}
	})
	return testExt{ExtKeyShare, b.BytesOrPanic()}
}

func extModes(modes ...byte) testExt {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(modes) })
	return testExt{ExtPSKKeyExchangeModes, b.BytesOrPanic()}
}

// extPSK builds a pre_shared_key with one identity per length, each with a
// 32-byte binder.
func extPSK(age uint32, idLens ...int) testExt {
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, n := range idLens {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, n)) })
			b.AddUint32(age)
		}
	})
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for range idLens {
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
		}
	})
	return testExt{ExtPreSharedKey, b.BytesOrPanic()}
}

func extEmpty(typ uint16) testExt { return testExt{typ, nil} }

func extBytes(typ uint16, n int) testExt { return testExt{typ, make([]byte, n)} }

// testServerHello builds a ServerHello; random 0 means the HRR random.
func testServerHello(version uint16, sessionID []byte, hrr bool, exts ...testExt) []byte {
	var b cryptobyte.Builder
	b.AddUint8(typeServerHello)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(VersionTLS12)
		if hrr {
			b.AddBytes(helloRetryRequestRandom[:])
		} else {
			b.AddBytes(make([]byte, 32))
		}
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sessionID) })
		b.AddUint16(0x1301)
		b.AddUint8(0)
		if version == VersionTLS13 {
			exts = append(exts, testExt{ExtSupportedVersions, []byte{0x03, 0x04}})
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddUint16(e.typ)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.data) })
			}
		})
	})
	return b.BytesOrPanic()
}

// records wraps handshake bytes into TLS records of at most size bytes each.
func records(ct byte, msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, ct, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// handshakeMsg builds a handshake message of a type with a body of n bytes.
func handshakeMsg(typ byte, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

var ccsRecord = []byte{recordChangeCipherSpec, 3, 3, 0, 1, 1}
