// Package upstream owns tlsresume's client session cache for its own
// handshakes with real servers.
//
// tlsresume dials the upstream server itself, so whether that handshake
// resumes depends on tlsresume's cache, not the client's. [Cache] is a
// [crypto/tls.ClientSessionCache] built to explain that outcome: each upstream
// handshake gets its own [View] (from [Cache.For]), which keys sessions the
// way Apple's TLS session cache does (server name + address + port, about ten
// minutes' lifetime; Apple Technical Q&A QA1727) and records what its Get
// found ([View.Lookup]) and how many tickets the server sent ([View.Stored]).
// Sessions are kept in a bounded LRU, expire after a TTL, remember which
// connection stored them, and can be saved to a file (mode 0600) so that
// resumption and its lineage survive a restart.
//
// How crypto/tls (Go 1.26) drives a ClientSessionCache, which shapes this
// package:
//
//   - Get is called once per handshake, before the ClientHello is sent
//     (handshake_client.go, loadSession). A session Get returns may still not
//     be offered: crypto/tls silently skips it if its version is not enabled,
//     its TLS 1.2 cipher suite is not offered, or it was made with a different
//     InsecureSkipVerify or server name. A hit is therefore "offered unless
//     crypto/tls declined"; compare with ConnectionState.DidResume.
//   - Put(key, nil) deletes. crypto/tls calls it right after Get when the
//     session's certificate has expired, its chains no longer verify, or (TLS
//     1.3) the server's ticket lifetime has passed; and at the end of a
//     handshake that offered the session and failed (RFC 5077, Section 3.2).
//   - TLS 1.2: the server's NewSessionTicket arrives inside the handshake, so
//     Put happens before Handshake returns. Go servers send a fresh ticket on
//     every resumption too (handshake_server.go, doResumeHandshake).
//   - TLS 1.3: NewSessionTicket is a post-handshake message, processed on the
//     first Read after the handshake (handshake_client_tls13.go,
//     handleNewSessionTicket); a server may send several, and each is a Put.
//
// The package does no logging and no network I/O; it reads and writes only
// the cache file it is given.
package upstream
