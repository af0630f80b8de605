// Package proxy is tlsresume's running system: the HTTP CONNECT listener,
// the peek at each client's ClientHello (package inspect) before TLS is
// terminated, the client-facing TLS that mirrors the origin, the upstream
// dialer with its own session cache (package upstream), goproxy serving the
// HTTP inside each tunnel, and the per-connection record with its verdict,
// published on a record stream that any number of readers subscribe to
// (Server.Subscribe: the --log file, the live view), none of which can slow
// a connection.
//
// Data flows one way: listener → peek → record → terminate → upstream →
// record → report. It logs only through the zerolog.Logger it is given.
package proxy
