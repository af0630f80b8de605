package inspect

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Transport markers for JA4's first character.
const (
	TransportTCP  = 't'
	TransportQUIC = 'q'
	TransportDTLS = 'd'
)

// Fingerprints holds JA3 and JA4 of one ClientHello.
type Fingerprints struct {
	JA3     string // "version,ciphers,extensions,groups,point_formats"
	JA3Hash string // MD5 of JA3, hex
	JA4     string
	JA4R    string // JA4 with the cipher and extension lists unhashed
}

// Fingerprint computes JA3 and JA4 for a parsed ClientHello. transport is
// TransportTCP, TransportQUIC or TransportDTLS.
func Fingerprint(h *ClientHello, transport byte) Fingerprints {
	var buf [1024]byte
	ja3 := appendJA3(buf[:0], h)
	sum := md5.Sum(ja3)
	var hexSum [32]byte
	hex.Encode(hexSum[:], sum[:])
	f := Fingerprints{JA3: string(ja3), JA3Hash: string(hexSum[:])}
	f.JA4, f.JA4R = ja4(h, transport)
	return f
}

// appendJA3 appends the JA3 string: decimal values joined by "-", fields
// joined by ",", GREASE values left out (Salesforce JA3 README).
func appendJA3(b []byte, h *ClientHello) []byte {
	b = strconv.AppendUint(b, uint64(h.LegacyVersion), 10)
	b = append(b, ',')
	b = appendDecimalList(b, h.CipherSuites)
	b = append(b, ',')
	first := true
	for _, e := range h.Extensions {
		if IsGREASE(e.Type) {
			continue
		}
		if !first {
			b = append(b, '-')
		}
		first = false
		b = strconv.AppendUint(b, uint64(e.Type), 10)
	}
	b = append(b, ',')
	b = appendDecimalList(b, h.SupportedGroups)
	b = append(b, ',')
	for i, f := range h.ECPointFormats {
		if i > 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, uint64(f), 10)
	}
	return b
}

func appendDecimalList(b []byte, vs []uint16) []byte {
	first := true
	for _, v := range vs {
		if IsGREASE(v) {
			continue
		}
		if !first {
			b = append(b, '-')
		}
		first = false
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return b
}

// ja4 computes JA4 and its raw form per FoxIO's technical_details/JA4.md.
// Where the text and FoxIO's reference implementations differ, the
// implementations' published outputs win (see ja4ALPN).
func ja4(h *ClientHello, transport byte) (hashed, raw string) {
	var ciphers, exts [128]uint16
	cs := nonGREASE(ciphers[:0], h.CipherSuites)
	es := exts[:0]
	nExt := 0
	for _, e := range h.Extensions {
		if IsGREASE(e.Type) {
			continue
		}
		nExt++
		// SNI and ALPN are counted but left out of the hashed list; they
		// show in the "d"/"i" flag and the ALPN characters instead.
		if e.Type != ExtServerName && e.Type != ExtALPN {
			es = append(es, e.Type)
		}
	}
	slices.Sort(cs)
	slices.Sort(es)

	var a [10]byte
	a[0] = transport
	v := ja4Version(h)
	a[1], a[2] = v[0], v[1]
	a[3] = 'i'
	if h.HasServerName {
		a[3] = 'd'
	}
	twoDigits(a[4:6], len(cs))
	twoDigits(a[6:8], nExt)
	a[8], a[9] = ja4ALPN(h)

	var cb, eb [1024]byte
	cList := appendHexList(cb[:0], cs)
	eList := appendHexList(eb[:0], es)
	sigs := 0
	for _, s := range h.SignatureAlgorithms {
		if IsGREASE(s) {
			continue
		}
		if sigs == 0 {
			eList = append(eList, '_')
		} else {
			eList = append(eList, ',')
		}
		sigs++
		eList = appendHex4(eList, s)
	}

	var ob [36]byte
	out := append(ob[:0], a[:]...)
	out = append(out, '_')
	out = appendHash12(out, cList)
	out = append(out, '_')
	out = appendHash12(out, eList)
	hashed = string(out)

	var rbuf [2048]byte
	rb := append(rbuf[:0], a[:]...)
	rb = append(rb, '_')
	rb = append(rb, cList...)
	rb = append(rb, '_')
	rb = append(rb, eList...)
	return hashed, string(rb)
}

// ja4Version is the highest non-GREASE supported_versions entry, or
// legacy_version when the extension is absent.
func ja4Version(h *ClientHello) string {
	v := h.LegacyVersion
	if h.HasSupportedVersions {
		best := uint16(0)
		for _, sv := range h.SupportedVersions {
			if !IsGREASE(sv) && sv > best {
				best = sv
			}
		}
		v = best
	}
	switch v {
	case VersionTLS13:
		return "13"
	case VersionTLS12:
		return "12"
	case VersionTLS11:
		return "11"
	case VersionTLS10:
		return "10"
	case VersionSSL30:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// ja4ALPN returns the first and last characters of the first ALPN value, or
// "00" when there is none. A non-ASCII character becomes '9', and a one-
// character value is followed by '0': this is what FoxIO's python and rust
// implementations print (rust/ja4/src/tls.rs first_last; their output for
// tls-non-ascii-alpn.pcapng is "99"), although JA4.md describes hex digits.
func ja4ALPN(h *ClientHello) (byte, byte) {
	if len(h.ALPN) == 0 || len(h.ALPN[0]) == 0 {
		return '0', '0'
	}
	p := h.ALPN[0]
	first, n := utf8.DecodeRune(p)
	if n == len(p) {
		return alpnChar(first), '0'
	}
	last, _ := utf8.DecodeLastRune(p)
	return alpnChar(first), alpnChar(last)
}

func alpnChar(r rune) byte {
	if r >= utf8.RuneSelf || r == utf8.RuneError {
		return '9'
	}
	return byte(r)
}

func nonGREASE(dst, vs []uint16) []uint16 {
	for _, v := range vs {
		if !IsGREASE(v) {
			dst = append(dst, v)
		}
	}
	return dst
}

func twoDigits(b []byte, n int) {
	n = min(n, 99)
	b[0] = byte('0' + n/10)
	b[1] = byte('0' + n%10)
}

const hexDigits = "0123456789abcdef"

func appendHex4(b []byte, v uint16) []byte {
	return append(b, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
}

func appendHexList(b []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendHex4(b, v)
	}
	return b
}

// appendHash12 appends the first 12 hex characters of SHA-256(s), or twelve
// zeros when s is empty (FoxIO rust/ja4/src/lib.rs hash12).
func appendHash12(b, s []byte) []byte {
	if len(s) == 0 {
		return append(b, "000000000000"...)
	}
	sum := sha256.Sum256(s)
	var h [12]byte
	hex.Encode(h[:], sum[:6])
	return append(b, h[:]...)
}
