package tlstest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// JA4 computes JA4 and JA4_r of a hello from tshark's fields, following
// FoxIO's technical_details/JA4.md. tshark 4.0 has no JA4 field, so this
// second implementation, written from the specification and fed by a
// different dissector, is what inspect's JA4 is checked against.
func (h *ClientHello) JA4() (ja4, raw string) {
	var ciphers, exts []int
	for _, c := range h.CipherSuites {
		if !isGREASE(c) {
			ciphers = append(ciphers, c)
		}
	}
	nExt := 0
	for _, e := range h.Extensions {
		if isGREASE(e) {
			continue
		}
		nExt++
		if e != 0x0000 && e != 0x0010 { // SNI and ALPN: counted, not listed
			exts = append(exts, e)
		}
	}
	slices.Sort(ciphers)
	slices.Sort(exts)

	version := h.LegacyVersion
	if h.Has(43) {
		version = 0
		for _, v := range h.SupportedVersions {
			if !isGREASE(v) && v > version {
				version = v
			}
		}
	}
	sni := "i"
	if h.Has(0) {
		sni = "d"
	}
	alpn := "00"
	if len(h.ALPN) > 0 && h.ALPN[0] != "" {
		p := h.ALPN[0]
		alpn = p[:1] + p[len(p)-1:]
	}
	transport := h.Transport
	if transport == 0 {
		transport = 't'
	}
	a := fmt.Sprintf("%c%s%s%02d%02d%s", transport, versionCode(version), sni, min(len(ciphers), 99), min(nExt, 99), alpn)

	cList := hexList(ciphers)
	eList := hexList(exts)
	var sigs []int
	for _, s := range h.SignatureAlgorithms {
		if !isGREASE(s) {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) > 0 {
		eList += "_" + hexList(sigs)
	}
	return a + "_" + hash12(cList) + "_" + hash12(eList), a + "_" + cList + "_" + eList
}

func versionCode(v int) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	}
	return "00"
}

func hexList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%04x", v)
	}
	return strings.Join(s, ",")
}

func hash12(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// isGREASE: the reserved values 0x?a?a of RFC 8701, Section 2.
func isGREASE(v int) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}
