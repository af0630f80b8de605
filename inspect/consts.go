package inspect

import "fmt"

// TLS record content types (RFC 8446, Section 5.1).
const (
	recordChangeCipherSpec = 20
	recordAlert            = 21
	recordHandshake        = 22
	recordApplicationData  = 23
)

// Handshake message types (RFC 8446, Section 4; RFC 5246, Section 7.4).
const (
	typeClientHello        = 1
	typeServerHello        = 2
	typeNewSessionTicket   = 4
	typeCertificate        = 11
	typeServerKeyExchange  = 12
	typeCertificateRequest = 13
	typeServerHelloDone    = 14
)

// Extension types, as registered by IANA ("TLS ExtensionType Values").
const (
	ExtServerName           uint16 = 0
	ExtStatusRequest        uint16 = 5
	ExtSupportedGroups      uint16 = 10
	ExtECPointFormats       uint16 = 11
	ExtSignatureAlgorithms  uint16 = 13
	ExtALPN                 uint16 = 16
	ExtSCT                  uint16 = 18
	ExtPadding              uint16 = 21
	ExtEncryptThenMAC       uint16 = 22
	ExtExtendedMasterSecret uint16 = 23
	ExtCompressCertificate  uint16 = 27
	ExtRecordSizeLimit      uint16 = 28
	ExtSessionTicket        uint16 = 35
	ExtPreSharedKey         uint16 = 41
	ExtEarlyData            uint16 = 42
	ExtSupportedVersions    uint16 = 43
	ExtCookie               uint16 = 44
	ExtPSKKeyExchangeModes  uint16 = 45
	ExtKeyShare             uint16 = 51
	ExtQUICTransportParams  uint16 = 57
	ExtECH                  uint16 = 0xfe0d
	ExtRenegotiationInfo    uint16 = 0xff01
)

// TLS protocol versions on the wire.
const (
	VersionSSL30 uint16 = 0x0300
	VersionTLS10 uint16 = 0x0301
	VersionTLS11 uint16 = 0x0302
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// maxHelloLen bounds a ClientHello: real hellos are under 2 KiB (a post-quantum
// key share adds about 1.2 KiB); anything over 64 KiB is refused.
const maxHelloLen = 64 << 10

// helloRetryRequestRandom is the ServerHello.random that marks a
// HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446, Section 4.1.3).
var helloRetryRequestRandom = [32]byte{
	0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
	0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
	0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
	0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
}

// IsGREASE reports whether v is one of the sixteen reserved GREASE values
// 0x?a?a used in cipher suites, extensions, groups and versions (RFC 8701).
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>8 == v&0xff
}

// VersionName returns a short name such as "1.3" for a TLS version.
func VersionName(v uint16) string {
	switch v {
	case VersionSSL30:
		return "ssl3"
	case VersionTLS10:
		return "1.0"
	case VersionTLS11:
		return "1.1"
	case VersionTLS12:
		return "1.2"
	case VersionTLS13:
		return "1.3"
	}
	if IsGREASE(v) {
		return "grease"
	}
	return fmt.Sprintf("0x%04x", v)
}

var extensionNames = map[uint16]string{
	ExtServerName:           "server_name",
	1:                       "max_fragment_length",
	ExtStatusRequest:        "status_request",
	ExtSupportedGroups:      "supported_groups",
	ExtECPointFormats:       "ec_point_formats",
	ExtSignatureAlgorithms:  "signature_algorithms",
	14:                      "use_srtp",
	15:                      "heartbeat",
	ExtALPN:                 "application_layer_protocol_negotiation",
	17:                      "status_request_v2",
	ExtSCT:                  "signed_certificate_timestamp",
	ExtPadding:              "padding",
	ExtEncryptThenMAC:       "encrypt_then_mac",
	ExtExtendedMasterSecret: "extended_master_secret",
	ExtCompressCertificate:  "compress_certificate",
	ExtRecordSizeLimit:      "record_size_limit",
	34:                      "delegated_credentials",
	ExtSessionTicket:        "session_ticket",
	ExtPreSharedKey:         "pre_shared_key",
	ExtEarlyData:            "early_data",
	ExtSupportedVersions:    "supported_versions",
	ExtCookie:               "cookie",
	ExtPSKKeyExchangeModes:  "psk_key_exchange_modes",
	47:                      "certificate_authorities",
	49:                      "post_handshake_auth",
	50:                      "signature_algorithms_cert",
	ExtKeyShare:             "key_share",
	ExtQUICTransportParams:  "quic_transport_parameters",
	13172:                   "next_protocol_negotiation",
	17513:                   "application_settings_old",
	17613:                   "application_settings",
	ExtECH:                  "encrypted_client_hello",
	ExtRenegotiationInfo:    "renegotiation_info",
}

// ExtensionName returns the IANA name of an extension type, "grease" for a
// GREASE value, or "unknown(N)".
func ExtensionName(t uint16) string {
	if n, ok := extensionNames[t]; ok {
		return n
	}
	if IsGREASE(t) {
		return "grease"
	}
	return fmt.Sprintf("unknown(%d)", t)
}

// quicParameterNames are the QUIC transport parameters of RFC 9000,
// Section 18.2, and later RFCs' (9221 datagrams, 9287 grease_quic_bit,
// 9368 version_information), and the private ones Chromium sends, as
// Chromium's QUICHE defines them (quic/core/crypto/transport_parameters.cc)
// and named as Wireshark names them where it does (google_*; 0xff73db is
// the id version_information had in its draft, which Chromium still sends).
var quicParameterNames = map[int]string{
	0x00: "original_destination_connection_id", 0x01: "max_idle_timeout", 0x02: "stateless_reset_token",
	0x03: "max_udp_payload_size", 0x04: "initial_max_data", 0x05: "initial_max_stream_data_bidi_local",
	0x06: "initial_max_stream_data_bidi_remote", 0x07: "initial_max_stream_data_uni", 0x08: "initial_max_streams_bidi",
	0x09: "initial_max_streams_uni", 0x0a: "ack_delay_exponent", 0x0b: "max_ack_delay", 0x0c: "disable_active_migration",
	0x0d: "preferred_address", 0x0e: "active_connection_id_limit", 0x0f: "initial_source_connection_id",
	0x10: "retry_source_connection_id", 0x11: "version_information", 0x20: "max_datagram_frame_size",
	0x2ab2: "grease_quic_bit",
	0x26ab: "google_handshake_message", 0x3127: "google_initial_rtt", 0x3128: "google_connection_options",
	0x4752: "google_quic_version", 0xff73db: "version_information_draft",
}

// QUICParameterName names a QUIC transport parameter id: its registered
// name, "grease" for the reserved 31*N+27 ids (RFC 9000, Section 18.1), or
// "unknown(0x…)".
func QUICParameterName(id int) string {
	if n, ok := quicParameterNames[id]; ok {
		return n
	}
	if id%31 == 27 {
		return "grease"
	}
	return fmt.Sprintf("unknown(%#x)", id)
}
