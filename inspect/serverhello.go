package inspect

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ServerHello holds a parsed ServerHello or HelloRetryRequest. Byte slices
// alias the parsed message.
type ServerHello struct {
	Raw               []byte
	LegacyVersion     uint16
	Random            []byte
	SessionID         []byte
	CipherSuite       uint16
	CompressionMethod uint8
	Extensions        []Extension

	HRR                  bool   // random is the HelloRetryRequest value (RFC 8446, Section 4.1.3)
	SupportedVersion     uint16 // selected_version, 0 when the extension is absent
	SelectedPSK          int    // pre_shared_key selected_identity, -1 when absent
	KeyShareGroup        uint16 // the server's key_share group (HRR: the group it asks for)
	ALPN                 []byte // the protocol the server selected
	SessionTicket        bool   // TLS 1.2: the server will send a NewSessionTicket (RFC 5077, Section 3.2)
	ExtendedMasterSecret bool
}

// Version returns the negotiated version: supported_versions when present
// (TLS 1.3), otherwise legacy_version.
func (s *ServerHello) Version() uint16 {
	if s.SupportedVersion != 0 {
		return s.SupportedVersion
	}
	return s.LegacyVersion
}

// Unmarshal parses a ServerHello handshake message, header included.
func (s *ServerHello) Unmarshal(msg []byte) error {
	*s = ServerHello{Raw: msg, Extensions: s.Extensions[:0], SelectedPSK: -1}
	p := parser{msg: msg, name: "server_hello"}
	in := cryptobyte.String(msg)
	var typ uint8
	var body cryptobyte.String
	if !in.ReadUint8(&typ) || !in.ReadUint24LengthPrefixed(&body) {
		return p.errAt(in, "handshake header", ErrTruncated, "")
	}
	if typ != typeServerHello {
		return p.errAt(body, "handshake type", ErrMalformed, fmt.Sprintf("type %d is not server_hello", typ))
	}
	var sid cryptobyte.String
	switch {
	case !body.ReadUint16(&s.LegacyVersion):
		return p.errAt(body, "legacy_version", ErrTruncated, "")
	case !body.ReadBytes(&s.Random, 32):
		return p.errAt(body, "random", ErrTruncated, "")
	case !body.ReadUint8LengthPrefixed(&sid):
		return p.errAt(body, "session_id", ErrTruncated, "")
	case len(sid) > 32:
		return p.errAt(body, "session_id", ErrMalformed, fmt.Sprintf("length %d exceeds 32", len(sid)))
	case !body.ReadUint16(&s.CipherSuite):
		return p.errAt(body, "cipher_suite", ErrTruncated, "")
	case !body.ReadUint8(&s.CompressionMethod):
		return p.errAt(body, "compression_method", ErrTruncated, "")
	}
	s.SessionID = sid
	s.HRR = [32]byte(s.Random) == helloRetryRequestRandom
	if body.Empty() {
		return nil
	}
	var exts cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return p.errAt(body, "extensions", ErrMalformed, "length")
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return p.errAt(exts, "extensions", ErrTruncated, fmt.Sprintf("extension #%d", len(s.Extensions)+1))
		}
		s.Extensions = append(s.Extensions, Extension{Type: typ, Data: data})
		if err := s.decodeExtension(&p, typ, data); err != nil {
			return err
		}
	}
	return nil
}

func (s *ServerHello) decodeExtension(p *parser, typ uint16, data cryptobyte.String) error {
	switch typ {
	case ExtSupportedVersions:
		if !data.ReadUint16(&s.SupportedVersion) || !data.Empty() {
			return p.extErr(data, typ, ErrMalformed, "selected_version length")
		}
	case ExtPreSharedKey:
		var id uint16
		if !data.ReadUint16(&id) || !data.Empty() {
			return p.extErr(data, typ, ErrMalformed, "selected_identity length")
		}
		s.SelectedPSK = int(id)
	case ExtKeyShare:
		// A ServerHello carries a KeyShareEntry, a HelloRetryRequest only the
		// selected group (RFC 8446, Section 4.2.8).
		if !data.ReadUint16(&s.KeyShareGroup) {
			return p.extErr(data, typ, ErrTruncated, "group")
		}
	case ExtALPN:
		var list, proto cryptobyte.String
		if !data.ReadUint16LengthPrefixed(&list) || !list.ReadUint8LengthPrefixed(&proto) {
			return p.extErr(data, typ, ErrMalformed, "protocol_name_list")
		}
		s.ALPN = proto
	case ExtSessionTicket:
		s.SessionTicket = true
	case ExtExtendedMasterSecret:
		s.ExtendedMasterSecret = true
	}
	return nil
}
