package inspect

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Extension is one extension as it appeared on the wire.
type Extension struct {
	Type uint16
	Data []byte // aliases the parsed message
}

// PSKIdentity is one identity of a pre_shared_key extension (RFC 8446,
// Section 4.2.11). The identity bytes are a ticket the server issued.
type PSKIdentity struct {
	Len                 int    `json:"len"`
	ObfuscatedTicketAge uint32 `json:"obfuscated_ticket_age"`
}

// ClientHello holds a parsed ClientHello. Byte slices alias the message
// passed to Unmarshal; the struct can be reused for the next message without
// allocating once its slices have grown.
type ClientHello struct {
	Raw                []byte // the whole handshake message, header included
	LegacyVersion      uint16
	Random             []byte
	SessionID          []byte
	CipherSuites       []uint16 // wire order, GREASE kept
	CompressionMethods []byte
	Extensions         []Extension // wire order, GREASE kept

	ServerName          []byte   // first host_name entry of server_name
	ALPN                [][]byte // protocol names in order
	SupportedVersions   []uint16
	SupportedGroups     []uint16
	KeyShareGroups      []uint16
	SignatureAlgorithms []uint16
	ECPointFormats      []byte
	CompressCertificate []uint16

	HasServerName, HasALPN, HasSupportedVersions bool

	SessionTicket        bool // the session_ticket extension is present
	SessionTicketLen     int  // its length: 0 asks for a ticket, >0 offers one
	PreSharedKey         bool
	PSKIdentities        []PSKIdentity
	PSKBinders           int
	HasPSKModes          bool
	PSKModes             []uint8
	EarlyData            bool
	ExtendedMasterSecret bool
	EncryptThenMAC       bool
	RenegotiationInfo    bool
	StatusRequest        bool
	SCT                  bool
	HasRecordSizeLimit   bool
	RecordSizeLimit      uint16
	Padding              int // length of the padding extension, -1 when absent
	ECH                  bool
	ECHType              int // 0 outer, 1 inner, -1 when absent (draft-ietf-tls-esni, Section 5)
}

// Unmarshal parses a ClientHello handshake message, header included. On error
// the struct holds what was parsed before the error.
func (h *ClientHello) Unmarshal(msg []byte) error {
	h.reset(msg)
	p := parser{msg: msg, name: "client_hello"}
	s := cryptobyte.String(msg)
	var typ uint8
	var body cryptobyte.String
	if !s.ReadUint8(&typ) || !s.ReadUint24LengthPrefixed(&body) {
		return p.errAt(s, "handshake header", ErrTruncated, "")
	}
	if typ != typeClientHello {
		return p.errAt(body, "handshake type", ErrMalformed, fmt.Sprintf("type %d is not client_hello", typ))
	}
	if len(s) != 0 {
		return p.errAt(s, "handshake length", ErrMalformed, fmt.Sprintf("%d bytes after the message", len(s)))
	}
	var sid, ciphers, comp cryptobyte.String
	if !body.ReadUint16(&h.LegacyVersion) {
		return p.errAt(body, "legacy_version", ErrTruncated, "")
	}
	if !body.ReadBytes(&h.Random, 32) {
		return p.errAt(body, "random", ErrTruncated, "")
	}
	if !body.ReadUint8LengthPrefixed(&sid) {
		return p.errAt(body, "session_id", ErrTruncated, "")
	}
	if len(sid) > 32 {
		return p.errAt(body, "session_id", ErrMalformed, fmt.Sprintf("length %d exceeds 32", len(sid)))
	}
	h.SessionID = sid
	if !body.ReadUint16LengthPrefixed(&ciphers) {
		return p.errAt(body, "cipher_suites", ErrTruncated, "")
	}
	if len(ciphers)%2 != 0 {
		return p.errAt(body, "cipher_suites", ErrMalformed, "odd length")
	}
	for !ciphers.Empty() {
		var c uint16
		ciphers.ReadUint16(&c)
		h.CipherSuites = append(h.CipherSuites, c)
	}
	if !body.ReadUint8LengthPrefixed(&comp) {
		return p.errAt(body, "compression_methods", ErrTruncated, "")
	}
	h.CompressionMethods = comp
	if body.Empty() {
		return nil // no extensions: an SSL 3.0-era hello (RFC 5246, Section 7.4.1.2)
	}
	var exts cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&exts) {
		return p.errAt(body, "extensions", ErrTruncated, "")
	}
	if !body.Empty() {
		return p.errAt(body, "extensions", ErrMalformed, fmt.Sprintf("%d bytes after the extensions", len(body)))
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return p.errAt(exts, "extensions", ErrTruncated, fmt.Sprintf("extension #%d", len(h.Extensions)+1))
		}
		h.Extensions = append(h.Extensions, Extension{Type: typ, Data: data})
		if err := h.decodeExtension(&p, typ, data); err != nil {
			return err
		}
	}
	return nil
}

func (h *ClientHello) reset(msg []byte) {
	*h = ClientHello{
		Raw:                 msg,
		CipherSuites:        h.CipherSuites[:0],
		Extensions:          h.Extensions[:0],
		ALPN:                h.ALPN[:0],
		SupportedVersions:   h.SupportedVersions[:0],
		SupportedGroups:     h.SupportedGroups[:0],
		KeyShareGroups:      h.KeyShareGroups[:0],
		SignatureAlgorithms: h.SignatureAlgorithms[:0],
		CompressCertificate: h.CompressCertificate[:0],
		PSKIdentities:       h.PSKIdentities[:0],
		PSKModes:            h.PSKModes[:0],
		Padding:             -1,
		ECHType:             -1,
	}
}

// decodeExtension decodes the extensions that matter for resumption and
// fingerprinting; others are kept as type and bytes only.
func (h *ClientHello) decodeExtension(p *parser, typ uint16, data cryptobyte.String) error {
	bad := func(kind error, detail string) error { return p.extErr(data, typ, kind, detail) }
	switch typ {
	case ExtServerName: // RFC 6066, Section 3
		h.HasServerName = true
		var list cryptobyte.String
		if len(data) == 0 {
			return nil // servers send it empty; a client should not, but it carries no name
		}
		if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() {
			return bad(ErrMalformed, "server_name_list length")
		}
		for !list.Empty() {
			var nameType uint8
			var name cryptobyte.String
			if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&name) {
				return bad(ErrTruncated, "server_name entry")
			}
			if nameType == 0 && h.ServerName == nil {
				h.ServerName = name
			}
		}
	case ExtALPN: // RFC 7301, Section 3.1
		h.HasALPN = true
		var list cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() {
			return bad(ErrMalformed, "protocol_name_list length")
		}
		for !list.Empty() {
			var proto cryptobyte.String
			if !list.ReadUint8LengthPrefixed(&proto) {
				return bad(ErrTruncated, "protocol name")
			}
			h.ALPN = append(h.ALPN, proto)
		}
	case ExtSupportedVersions: // RFC 8446, Section 4.2.1
		h.HasSupportedVersions = true
		var list cryptobyte.String
		if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || len(list)%2 != 0 {
			return bad(ErrMalformed, "versions length")
		}
		h.SupportedVersions = appendUint16s(h.SupportedVersions, list)
	case ExtSupportedGroups: // RFC 8446, Section 4.2.7
		var list cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || len(list)%2 != 0 {
			return bad(ErrMalformed, "named_group_list length")
		}
		h.SupportedGroups = appendUint16s(h.SupportedGroups, list)
	case ExtSignatureAlgorithms: // RFC 8446, Section 4.2.3
		var list cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || len(list)%2 != 0 {
			return bad(ErrMalformed, "supported_signature_algorithms length")
		}
		h.SignatureAlgorithms = appendUint16s(h.SignatureAlgorithms, list)
	case ExtKeyShare: // RFC 8446, Section 4.2.8
		var list cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() {
			return bad(ErrMalformed, "client_shares length")
		}
		for !list.Empty() {
			var group uint16
			var key cryptobyte.String
			if !list.ReadUint16(&group) || !list.ReadUint16LengthPrefixed(&key) {
				return bad(ErrTruncated, "key_share entry")
			}
			h.KeyShareGroups = append(h.KeyShareGroups, group)
		}
	case ExtECPointFormats: // RFC 8422, Section 5.1.2
		var list cryptobyte.String
		if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() {
			return bad(ErrMalformed, "ec_point_format_list length")
		}
		h.ECPointFormats = list
	case ExtSessionTicket: // RFC 5077, Section 3.2: empty asks for a ticket
		h.SessionTicket = true
		h.SessionTicketLen = len(data)
	case ExtPreSharedKey: // RFC 8446, Section 4.2.11
		h.PreSharedKey = true
		var ids, binders cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&ids) || !data.ReadUint16LengthPrefixed(&binders) || !data.Empty() {
			return bad(ErrMalformed, "identities or binders length")
		}
		for !ids.Empty() {
			var id cryptobyte.String
			var age uint32
			if !ids.ReadUint16LengthPrefixed(&id) || !ids.ReadUint32(&age) {
				return bad(ErrTruncated, "psk identity")
			}
			h.PSKIdentities = append(h.PSKIdentities, PSKIdentity{Len: len(id), ObfuscatedTicketAge: age})
		}
		for !binders.Empty() {
			var b cryptobyte.String
			if !binders.ReadUint8LengthPrefixed(&b) {
				return bad(ErrTruncated, "psk binder")
			}
			h.PSKBinders++
		}
	case ExtPSKKeyExchangeModes: // RFC 8446, Section 4.2.9
		h.HasPSKModes = true
		var list cryptobyte.String
		if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() {
			return bad(ErrMalformed, "ke_modes length")
		}
		h.PSKModes = append(h.PSKModes, list...)
	case ExtEarlyData: // RFC 8446, Section 4.2.10: empty in a ClientHello
		h.EarlyData = true
	case ExtExtendedMasterSecret: // RFC 7627
		h.ExtendedMasterSecret = true
	case ExtEncryptThenMAC: // RFC 7366
		h.EncryptThenMAC = true
	case ExtRenegotiationInfo: // RFC 5746
		h.RenegotiationInfo = true
	case ExtStatusRequest: // RFC 6066, Section 8
		h.StatusRequest = true
	case ExtSCT: // RFC 6962, Section 3.3.1
		h.SCT = true
	case ExtCompressCertificate: // RFC 8879, Section 3
		var list cryptobyte.String
		if !data.ReadUint8LengthPrefixed(&list) || !data.Empty() || len(list)%2 != 0 {
			return bad(ErrMalformed, "algorithms length")
		}
		h.CompressCertificate = appendUint16s(h.CompressCertificate, list)
	case ExtRecordSizeLimit: // RFC 8449, Section 4
		h.HasRecordSizeLimit = true
		if !data.ReadUint16(&h.RecordSizeLimit) || !data.Empty() {
			return bad(ErrMalformed, "record_size_limit length")
		}
	case ExtPadding: // RFC 7685
		h.Padding = len(data)
	case ExtECH: // draft-ietf-tls-esni, Section 5: ECHClientHello.type
		h.ECH = true
		var t uint8
		if !data.ReadUint8(&t) {
			return bad(ErrTruncated, "ECHClientHello type")
		}
		h.ECHType = int(t)
	}
	return nil
}

func appendUint16s(dst []uint16, s cryptobyte.String) []uint16 {
	for !s.Empty() {
		var v uint16
		s.ReadUint16(&v)
		dst = append(dst, v)
	}
	return dst
}

// extErr returns a ParseError inside extension typ; the field name is only
// built on this error path, keeping the parse free of allocations.
func (p *parser) extErr(rest []byte, typ uint16, kind error, detail string) error {
	return p.errAt(rest, "extension "+ExtensionName(typ), kind, detail)
}

// parser remembers the message being parsed so errors can carry offsets.
type parser struct {
	msg  []byte
	name string
}

// errAt returns a ParseError at the offset where rest begins inside p.msg.
func (p *parser) errAt(rest []byte, field string, kind error, detail string) error {
	return &ParseError{Message: p.name, Field: field, Offset: offsetIn(p.msg, rest), Kind: kind, Detail: detail}
}

// offsetIn returns where sub starts inside msg, or len(msg) when sub is empty
// or not inside msg.
func offsetIn(msg, sub []byte) int {
	if len(sub) == 0 || len(msg) == 0 {
		return len(msg)
	}
	off := cap(msg) - cap(sub)
	if off < 0 || off > len(msg) {
		return len(msg)
	}
	return off
}
