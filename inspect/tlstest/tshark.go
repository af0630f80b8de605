package tlstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Handshake types tshark reports in tls.handshake.type.
const (
	TypeClientHello = 1
	TypeServerHello = 2
	TypeCertificate = 11
)

// Message is one plaintext handshake message as tshark dissected it.
type Message struct {
	Frame   int // frame that completed the message
	Stream  int // tcp.stream, or udp.stream for QUIC
	SrcPort int
	DstPort int
	Type    int
	// QUIC: the first QUIC packet of the frame (hex connection IDs).
	QUIC *QUICPacket
	n    *node
}

// QUICPacket is tshark's view of a QUIC long header.
type QUICPacket struct {
	Version    int
	DCID, SCID string
}

// QUICHelloStart is a client packet that carries the start of a CRYPTO
// stream (offset 0): a hello's first bytes, sent before the server
// answered, so to the Destination Connection ID its Initial keys derive
// from.
type QUICHelloStart struct {
	Frame int
	DCID  string
}

// QUICHelloStarts lists, in frame order, the client packets to port that
// tshark's QUIC dissector finds a CRYPTO frame at offset 0 in. (tshark's
// own connection numbers are no help here: it takes quic-go's switch to
// another server-issued connection ID for a new connection.)
func QUICHelloStarts(ctx context.Context, tshark, path string, port int) ([]QUICHelloStart, error) {
	out, _, err := Run(ctx, "", tshark, "-r", path, "-n", "-d", fmt.Sprintf("udp.port==%d,quic", port),
		"-Y", fmt.Sprintf("udp.dstport==%d && quic.crypto.offset==0", port),
		"-T", "fields", "-E", "occurrence=f", "-e", "frame.number", "-e", "quic.dcid")
	if err != nil {
		return nil, err
	}
	var starts []QUICHelloStart
	for _, line := range strings.Split(out, "\n") {
		frame, dcid, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			starts = append(starts, QUICHelloStart{num(frame), hexBytes(dcid)})
		}
	}
	return starts, nil
}

// Dissect runs tshark on the capture at path, decoding TCP port as TLS, and
// returns the plaintext handshake messages in frame order.
func Dissect(ctx context.Context, tshark, path string, port int) ([]Message, error) {
	return DissectAs(ctx, tshark, path, port, "tls")
}

// DissectAs is Dissect with TCP port decoded as proto (tshark's -d). With
// "http", the port of an HTTP proxy, tshark follows each CONNECT: after the
// proxy's 200 it dissects the tunnel as TLS.
func DissectAs(ctx context.Context, tshark, path string, port int, proto string) ([]Message, error) {
	return dissect(ctx, tshark, path, "tcp", fmt.Sprintf("tcp.port==%d,%s", port, proto))
}

// DissectQUIC is Dissect for QUIC on UDP port: tshark derives the Initial
// keys and decrypts the Initial packets itself (its QUIC dissector),
// reassembles their CRYPTO frames, and dissects the hellos as TLS.
func DissectQUIC(ctx context.Context, tshark, path string, port int) ([]Message, error) {
	return dissect(ctx, tshark, path, "udp", fmt.Sprintf("udp.port==%d,quic", port))
}

func dissect(ctx context.Context, tshark, path, transport, decodeAs string) ([]Message, error) {
	// -x adds each field's raw bytes ("*_raw"): tshark 4.0 does not dissect
	// the individual PSK binders, only their bytes.
	out, _, err := Run(ctx, "", tshark, "-r", path, "-n", "-d", decodeAs,
		"-Y", "tls.handshake.type", "-T", "json", "-x", "-J", "frame "+transport+" quic tls")
	if err != nil {
		return nil, err
	}
	root, err := parseTree(bytes.NewReader([]byte(out)))
	if err != nil {
		return nil, err
	}
	var msgs []Message
	for _, pkt := range root.kids {
		layers := pkt.child("_source")
		if layers != nil {
			layers = layers.child("layers")
		}
		if layers == nil {
			return nil, fmt.Errorf("tshark json: a packet without _source.layers")
		}
		base := Message{
			Frame:   first(layers, "frame.number"),
			Stream:  first(layers, transport+".stream"),
			SrcPort: first(layers, transport+".srcport"),
			DstPort: first(layers, transport+".dstport"),
		}
		if q := layers.child("quic"); q != nil {
			base.QUIC = &QUICPacket{Version: first(q, "quic.version"), DCID: hexBytes(str(q, "quic.dcid")), SCID: hexBytes(str(q, "quic.scid"))}
		}
		layers.walk(func(k *node) bool {
			if k.key == "tls.handshake" && k.has("tls.handshake.type") {
				m := base
				m.Type = num(k.child("tls.handshake.type").val)
				m.n = k
				msgs = append(msgs, m)
				return false
			}
			return true
		})
	}
	return msgs, nil
}

// ClientHello is tshark's view of a ClientHello, in inspect's terms.
type ClientHello struct {
	Transport           byte // JA4's first character: 't', or 'q' for QUIC
	LegacyVersion       int
	Random              string // hex
	SessionID           string // hex
	SessionIDLen        int
	CipherSuites        []int
	Extensions          []int
	ExtensionLens       map[int]int
	SNI                 string
	ALPN                []string
	SupportedVersions   []int
	SupportedGroups     []int
	KeyShareGroups      []int
	SignatureAlgorithms []int // of the signature_algorithms extension only
	ECPointFormats      []int
	PSKIdentityLens     []int
	PSKTicketAges       []int64
	PSKBinders          int   // -1 when the binders could not be counted
	PSKModes            []int // nil when the extension is absent
	JA3Full, JA3        string
}

// Has reports whether the hello carries extension typ.
func (h *ClientHello) Has(typ int) bool {
	_, ok := h.ExtensionLens[typ]
	return ok
}

// ClientHello returns tshark's view of m, which must be a ClientHello.
func (m Message) ClientHello() *ClientHello {
	n := m.n
	h := &ClientHello{
		Transport:     't',
		LegacyVersion: first(n, "tls.handshake.version"),
		Random:        hexBytes(str(n, "tls.handshake.random")),
		SessionID:     hexBytes(str(n, "tls.handshake.session_id")),
		SessionIDLen:  first(n, "tls.handshake.session_id_length"),
		CipherSuites:  nums(n.all("tls.handshake.ciphersuite")),
		ExtensionLens: map[int]int{},
		PSKBinders:    -1,
		JA3Full:       str(n, "tls.handshake.ja3_full"),
		JA3:           str(n, "tls.handshake.ja3"),
	}
	if m.QUIC != nil {
		h.Transport = 'q'
	}
	for _, e := range extensions(n) {
		typ := num(e.child("tls.handshake.extension.type").val)
		h.Extensions = append(h.Extensions, typ)
		h.ExtensionLens[typ] = first(e, "tls.handshake.extension.len")
		switch typ {
		case 0:
			h.SNI = str(e, "tls.handshake.extensions_server_name")
		case 10:
			h.SupportedGroups = nums(e.all("tls.handshake.extensions_supported_group"))
		case 11:
			h.ECPointFormats = nums(e.all("tls.handshake.extensions_ec_point_format"))
		case 13:
			// The same field name is used by signature_algorithms_cert (50)
			// and by a TLS 1.2 ServerKeyExchange: read it inside 13 only.
			h.SignatureAlgorithms = nums(e.all("tls.handshake.sig_hash_alg"))
		case 16:
			h.ALPN = e.all("tls.handshake.extensions_alpn_str")
		case 41:
			h.PSKIdentityLens = nums(e.all("tls.handshake.extensions.psk.identity.identity_length"))
			for _, a := range e.all("tls.handshake.extensions.psk.identity.obfuscated_ticket_age") {
				v, _ := strconv.ParseInt(a, 0, 64)
				h.PSKTicketAges = append(h.PSKTicketAges, v)
			}
			if raw, ok := e.first("tls.handshake.extensions.psk.binders_raw"); ok {
				h.PSKBinders = countBinders(raw)
			}
		case 43:
			h.SupportedVersions = nums(e.all("tls.handshake.extensions.supported_version"))
		case 45:
			// tshark 4.0 names it tls.extension.psk_ke_mode; newer ones
			// tls.handshake.extensions_psk_ke_mode.
			h.PSKModes = append(append([]int{}, nums(e.all("tls.extension.psk_ke_mode"))...),
				nums(e.all("tls.handshake.extensions_psk_ke_mode"))...)
		case 51:
			h.KeyShareGroups = nums(e.all("tls.handshake.extensions_key_share_group"))
		}
	}
	return h
}

// countBinders counts the PskBinderEntry items (each a one-byte length and
// that many bytes, RFC 8446 Section 4.2.11) in the hex of the binders list.
// It returns -1 when the bytes do not parse.
func countBinders(h string) int {
	b, err := hex.DecodeString(h)
	if err != nil {
		return -1
	}
	n := 0
	for len(b) > 0 {
		l := int(b[0])
		if 1+l > len(b) {
			return -1
		}
		b = b[1+l:]
		n++
	}
	return n
}

// ServerHello is tshark's view of a ServerHello or HelloRetryRequest.
type ServerHello struct {
	LegacyVersion    int
	SupportedVersion int // 0 when absent
	Random           string
	SessionID        string
	SessionIDLen     int
	CipherSuite      int
	SelectedPSK      int // -1 when absent
	Extensions       []int
}

// Version is the negotiated version: supported_versions, else legacy_version.
func (s *ServerHello) Version() int {
	if s.SupportedVersion != 0 {
		return s.SupportedVersion
	}
	return s.LegacyVersion
}

// hrrRandom is SHA-256("HelloRetryRequest"), the random of a
// HelloRetryRequest (RFC 8446, Section 4.1.3), computed here rather than
// copied from package inspect.
var hrrRandom = func() string {
	s := sha256.Sum256([]byte("HelloRetryRequest"))
	return hex.EncodeToString(s[:])
}()

// HRR reports whether this is a HelloRetryRequest.
func (s *ServerHello) HRR() bool { return s.Random == hrrRandom }

// ServerHello returns tshark's view of m, which must be a ServerHello.
func (m Message) ServerHello() *ServerHello {
	n := m.n
	s := &ServerHello{
		LegacyVersion: first(n, "tls.handshake.version"),
		Random:        hexBytes(str(n, "tls.handshake.random")),
		SessionID:     hexBytes(str(n, "tls.handshake.session_id")),
		SessionIDLen:  first(n, "tls.handshake.session_id_length"),
		CipherSuite:   first(n, "tls.handshake.ciphersuite"),
		SelectedPSK:   -1,
	}
	for _, e := range extensions(n) {
		typ := num(e.child("tls.handshake.extension.type").val)
		s.Extensions = append(s.Extensions, typ)
		switch typ {
		case 41:
			if v, ok := e.first("tls.handshake.extensions.psk.identity.selected"); ok {
				s.SelectedPSK = num(v)
			}
		case 43:
			s.SupportedVersion = first(e, "tls.handshake.extensions.supported_version")
		}
	}
	return s
}

// extensions returns a hello's extension subtrees in wire order.
func extensions(hs *node) []*node {
	var out []*node
	for _, k := range hs.kids {
		if !k.leaf && k.has("tls.handshake.extension.type") {
			out = append(out, k)
		}
	}
	return out
}

func str(n *node, key string) string {
	v, _ := n.first(key)
	return v
}

func first(n *node, key string) int {
	v, ok := n.first(key)
	if !ok {
		return 0
	}
	return num(v)
}

// num parses tshark's decimal or 0x-prefixed hex; -1 when it is neither.
func num(s string) int {
	v, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return -1
	}
	return int(v)
}

func nums(vs []string) []int {
	var out []int
	for _, v := range vs {
		out = append(out, num(v))
	}
	return out
}
