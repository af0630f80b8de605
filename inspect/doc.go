// Package inspect turns the raw bytes of a TLS handshake into the facts that
// decide session resumption: what a client offered in its ClientHello
// (session_ticket, pre_shared_key, psk_key_exchange_modes, early_data, the
// legacy session ID, versions, groups, ALPN, SNI, the ordered extension list,
// JA3 and JA4) and whether the server resumed, read from its ServerHello and
// the messages that follow it.
//
// The package is pure: it does no network I/O and no logging. The proxy calls
// [ReadClientHello] on a live connection before TLS is terminated and replays
// the bytes it consumed; the pcap reader feeds both directions of a captured
// connection to a [Conversation]. QUIC is read datagram by datagram by a
// [QUICFlow] (quicflow.go; a connection's Initials in quicconn.go, their
// packets and keys in quic.go, CRYPTO frames in quiccrypto.go), which the
// capture reader (quiccapture.go) and the proxy's live QUIC relay both
// feed. All produce the same [Record], whose JSON shape is the contract
// other tools read (see README.md, "The record").
package inspect
