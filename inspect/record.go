package inspect

import (
	"encoding/hex"
	"time"
)

// Record is one ClientHello and what the server answered: one JSON object
// per line in `tlsresume inspect --format jsonl` and, extended, in the
// proxy's log. Field names are a contract (README.md, "The record").
type Record struct {
	V          int       `json:"v"` // SchemaVersion
	Time       time.Time `json:"time"`
	Source     Source    `json:"source"`
	Transport  string    `json:"transport,omitempty"` // "tcp" or "quic"; empty in records before QUIC was read, meaning tcp
	ClientAddr string    `json:"client_addr"`
	ServerAddr string    `json:"server_addr"`
	// Device names the WireGuard device the connection came from (source
	// "wireguard"); empty for every other source.
	Device string `json:"device,omitempty"`
	// DNSName is the name the device last looked up through tlsresume's
	// WireGuard DNS whose answer held the destination address: what the
	// device meant to reach, also when its hello names nothing (no SNI).
	// Empty when it looked up no name for the address.
	DNSName     string             `json:"dns_name,omitempty"`
	SNI         string             `json:"sni"`
	Frame       int                `json:"frame,omitempty"` // pcap: frame that completed the hello
	ClientHello *ClientHelloRecord `json:"client_hello"`
	ServerHello *ServerHelloRecord `json:"server_hello"`
	QUIC        *QUICFacts         `json:"quic,omitempty"` // transport "quic": the connection's Initial packets
	// EarlyDataSent: the client sent 0-RTT data after this hello (QUIC:
	// 0-RTT packets seen before its first Handshake or 1-RTT packet).
	EarlyDataSent bool `json:"early_data_sent,omitempty"`
	// ClientAlert is the alert the client ended the handshake with, by its
	// RFC 8446 name, when it was sent in plaintext while the server's
	// flight was being read (TLS 1.2: before the server's
	// ChangeCipherSpec): "unknown_ca", "bad_certificate" and the like say
	// that the client rejected the server's certificate.
	ClientAlert string `json:"client_alert,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Transport names, the values of Record.Transport.
const (
	TransportNameTCP  = "tcp"
	TransportNameQUIC = "quic"
)

// TransportName is a record's transport, "tcp" when the record predates
// the field.
func (r *Record) TransportName() string {
	if r.Transport == "" {
		return TransportNameTCP
	}
	return r.Transport
}

// QUICFacts describes the QUIC connection whose Initial packets carried a
// hello (RFC 9000, Section 17.2.2). Connection IDs are hex.
type QUICFacts struct {
	Version     string `json:"version"`      // the long header's version, 8 hex digits: "00000001"
	VersionName string `json:"version_name"` // "v1", "v2", "grease", "draft-29", else the hex
	// DCID is the Destination Connection ID of the client's first Initial
	// (after a Retry, of its first Initial after it): the Initial keys
	// derive from it.
	DCID       string `json:"dcid"`
	SCID       string `json:"scid"`                  // the client's Source Connection ID
	ServerSCID string `json:"server_scid,omitempty"` // the server's, from its first Initial
	// Retry: the server answered the client's first Initial with a Retry
	// packet (RFC 9000, Section 17.2.5) instead of a ServerHello.
	Retry *QUICRetry `json:"retry,omitempty"`
	// VersionNegotiation lists the versions a server's Version Negotiation
	// packet offered (8 hex digits each): it did not speak the client's.
	VersionNegotiation []string `json:"version_negotiation,omitempty"`
	// NegotiatedVersion: the server answered in another version than the
	// client's first Initial (compatible version negotiation, RFC 9368).
	NegotiatedVersion string `json:"negotiated_version,omitempty"`
}

// QUICRetry is a server's Retry packet.
type QUICRetry struct {
	SCID     string `json:"scid"` // the client's next Initial is sent to it
	TokenLen int    `json:"token_len"`
}

// ClientHelloRecord is the JSON form of a ClientHello's facts.
type ClientHelloRecord struct {
	LegacyVersion        int               `json:"legacy_version"`
	Random               string            `json:"random"`
	SessionID            string            `json:"session_id"`
	SessionIDLen         int               `json:"session_id_len"`
	CipherSuites         []int             `json:"cipher_suites"`
	CompressionMethods   []int             `json:"compression_methods"`
	Extensions           []int             `json:"extensions"`
	Grease               []string          `json:"grease"` // which lists carry GREASE values (RFC 8701)
	ALPN                 []string          `json:"alpn"`
	SupportedVersions    []int             `json:"supported_versions"`
	SupportedGroups      []int             `json:"supported_groups"`
	KeyShareGroups       []int             `json:"key_share_groups"`
	SignatureAlgorithms  []int             `json:"signature_algorithms"`
	ECPointFormats       []int             `json:"ec_point_formats"`
	SessionTicket        SessionTicketFact `json:"session_ticket"`
	PreSharedKey         PSKFact           `json:"pre_shared_key"`
	PSKKeyExchangeModes  []int             `json:"psk_key_exchange_modes"` // null when absent
	EarlyData            bool              `json:"early_data"`
	ExtendedMasterSecret bool              `json:"extended_master_secret"`
	EncryptThenMAC       bool              `json:"encrypt_then_mac"`
	RenegotiationInfo    bool              `json:"renegotiation_info"`
	StatusRequest        bool              `json:"status_request"`
	SCT                  bool              `json:"sct"`
	CompressCertificate  []int             `json:"compress_certificate"`
	RecordSizeLimit      *int              `json:"record_size_limit"` // null when absent
	Padding              *int              `json:"padding"`           // length; null when absent
	ECH                  bool              `json:"ech"`
	ECHType              *int              `json:"ech_type"` // 0 outer, 1 inner; null when absent
	Attempt              Attempt           `json:"attempt"`
	JA3                  string            `json:"ja3"`
	JA3Hash              string            `json:"ja3_hash"`
	JA4                  string            `json:"ja4"`
	JA4R                 string            `json:"ja4_r"`
	// QUICTransportParameters: the ids of quic_transport_parameters in wire
	// order (RFC 9000, Section 18), for hellos carried by QUIC.
	QUICTransportParameters []int `json:"quic_transport_parameters,omitempty"`
}

// SessionTicketFact: offered with len 0 asks the server for a ticket; len > 0
// offers one (RFC 5077, Section 3.1).
type SessionTicketFact struct {
	Offered bool `json:"offered"`
	Len     int  `json:"len"`
}

// PSKFact describes a pre_shared_key extension.
type PSKFact struct {
	Offered    bool          `json:"offered"`
	Identities []PSKIdentity `json:"identities"`
	Binders    int           `json:"binders"`
}

// ServerHelloRecord is the JSON form of the server's answer and the verdict.
type ServerHelloRecord struct {
	Version       int    `json:"version"`
	CipherSuite   int    `json:"cipher_suite"`
	SessionID     string `json:"session_id"`
	SessionIDLen  int    `json:"session_id_len"`
	HRR           bool   `json:"hrr"`
	SelectedPSK   *int   `json:"selected_psk"`
	KeyShareGroup int    `json:"key_share_group"`
	ALPN          string `json:"alpn"`
	Extensions    []int  `json:"extensions"`
	TicketExt     bool   `json:"ticket_ext"` // TLS 1.2: session_ticket in ServerHello, a ticket will follow
	// Evidence after the ServerHello (TLS 1.2 and earlier; TLS 1.3 encrypts it).
	Certificate      bool        `json:"certificate"`        // a Certificate message: full handshake
	NewSessionTicket *TicketFact `json:"new_session_ticket"` // a plaintext TLS 1.2 ticket was issued
	Complete         bool        `json:"complete"`           // enough was seen to decide
	Resumed          bool        `json:"resumed"`
	ResumedBy        *Attempt    `json:"resumed_by"` // psk, ticket, session_id or null
}

// TicketFact describes a TLS 1.2 NewSessionTicket (RFC 5077, Section 3.3).
type TicketFact struct {
	LifetimeHint uint32 `json:"lifetime_hint"`
	Len          int    `json:"len"`
}

// MaxVersion is the highest version a hello offers: supported_versions
// without GREASE, else legacy_version.
func MaxVersion(h *ClientHelloRecord) int {
	hi := 0
	for _, v := range h.SupportedVersions {
		if !IsGREASE(uint16(v)) {
			hi = max(hi, v)
		}
	}
	if hi == 0 {
		return h.LegacyVersion
	}
	return hi
}

// NewClientHelloRecord converts a parsed ClientHello into its record form.
// attempt is computed by the caller (see Attempt), which knows the history.
func NewClientHelloRecord(h *ClientHello, attempt Attempt, fp Fingerprints) *ClientHelloRecord {
	r := &ClientHelloRecord{
		LegacyVersion:        int(h.LegacyVersion),
		Random:               hex.EncodeToString(h.Random),
		SessionID:            hex.EncodeToString(h.SessionID),
		SessionIDLen:         len(h.SessionID),
		CipherSuites:         ints(h.CipherSuites),
		CompressionMethods:   bytesToInts(h.CompressionMethods),
		Extensions:           make([]int, len(h.Extensions)),
		ALPN:                 make([]string, len(h.ALPN)),
		SupportedVersions:    ints(h.SupportedVersions),
		SupportedGroups:      ints(h.SupportedGroups),
		KeyShareGroups:       ints(h.KeyShareGroups),
		SignatureAlgorithms:  ints(h.SignatureAlgorithms),
		ECPointFormats:       bytesToInts(h.ECPointFormats),
		SessionTicket:        SessionTicketFact{Offered: h.SessionTicket, Len: h.SessionTicketLen},
		PreSharedKey:         PSKFact{Offered: h.PreSharedKey, Identities: append([]PSKIdentity{}, h.PSKIdentities...), Binders: h.PSKBinders},
		EarlyData:            h.EarlyData,
		ExtendedMasterSecret: h.ExtendedMasterSecret,
		EncryptThenMAC:       h.EncryptThenMAC,
		RenegotiationInfo:    h.RenegotiationInfo,
		StatusRequest:        h.StatusRequest,
		SCT:                  h.SCT,
		CompressCertificate:  ints(h.CompressCertificate),
		ECH:                  h.ECH,
		Attempt:              attempt,
		JA3:                  fp.JA3,
		JA3Hash:              fp.JA3Hash,
		JA4:                  fp.JA4,
		JA4R:                 fp.JA4R,
	}
	for i, e := range h.Extensions {
		r.Extensions[i] = int(e.Type)
		if e.Type == ExtQUICTransportParams {
			r.QUICTransportParameters = transportParameterIDs(e.Data)
		}
	}
	for i, p := range h.ALPN {
		r.ALPN[i] = string(p)
	}
	if h.HasPSKModes {
		r.PSKKeyExchangeModes = bytesToInts(h.PSKModes)
	}
	if h.HasRecordSizeLimit {
		r.RecordSizeLimit = intPtr(int(h.RecordSizeLimit))
	}
	if h.Padding >= 0 {
		r.Padding = intPtr(h.Padding)
	}
	if h.ECHType >= 0 {
		r.ECHType = intPtr(h.ECHType)
	}
	r.Grease = greaseLists(h)
	return r
}

// transportParameterIDs lists the ids of a quic_transport_parameters
// extension in wire order (RFC 9000, Section 18: id, length, value, as
// variable-length integers); a parameter cut short ends the list.
func transportParameterIDs(b []byte) []int {
	ids := []int{}
	for len(b) > 0 {
		id, n := readVarint(b)
		if n == 0 {
			break
		}
		l, m := readVarint(b[n:])
		if m == 0 || uint64(len(b)-n-m) < l {
			break
		}
		ids = append(ids, int(id))
		b = b[n+m+int(l):]
	}
	return ids
}

func greaseLists(h *ClientHello) []string {
	out := []string{}
	has := func(vs []uint16) bool {
		for _, v := range vs {
			if IsGREASE(v) {
				return true
			}
		}
		return false
	}
	exts := false
	for _, e := range h.Extensions {
		exts = exts || IsGREASE(e.Type)
	}
	for _, l := range []struct {
		name string
		on   bool
	}{
		{"cipher_suites", has(h.CipherSuites)},
		{"extensions", exts},
		{"supported_versions", has(h.SupportedVersions)},
		{"supported_groups", has(h.SupportedGroups)},
		{"key_share_groups", has(h.KeyShareGroups)},
		{"signature_algorithms", has(h.SignatureAlgorithms)},
	} {
		if l.on {
			out = append(out, l.name)
		}
	}
	return out
}

// NewServerHelloRecord converts a parsed ServerHello into its record form;
// the verdict fields are filled in by the caller once the flight is known.
func NewServerHelloRecord(s *ServerHello) *ServerHelloRecord {
	r := &ServerHelloRecord{
		Version:       int(s.Version()),
		CipherSuite:   int(s.CipherSuite),
		SessionID:     hex.EncodeToString(s.SessionID),
		SessionIDLen:  len(s.SessionID),
		HRR:           s.HRR,
		KeyShareGroup: int(s.KeyShareGroup),
		ALPN:          string(s.ALPN),
		Extensions:    make([]int, len(s.Extensions)),
		TicketExt:     s.SessionTicket,
	}
	for i, e := range s.Extensions {
		r.Extensions[i] = int(e.Type)
	}
	if s.SelectedPSK >= 0 {
		r.SelectedPSK = intPtr(s.SelectedPSK)
	}
	return r
}

func ints(vs []uint16) []int {
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = int(v)
	}
	return out
}

func bytesToInts(vs []byte) []int {
	out := make([]int, len(vs))
	for i, v := range vs {
		out[i] = int(v)
	}
	return out
}

func intPtr(v int) *int { return &v }

func attemptPtr(a Attempt) *Attempt { return &a }
