// Package dns is tlsresume's DNS server for DNS-redirect mode: the only
// change on a phone is its DNS server (and trusting tlsresume's CA).
//
// [Server] answers A and AAAA queries for the intercepted names with the
// proxy's own address, so the phone connects to tlsresume, which sees the
// ClientHello (SNI) and relays to the real origin. Every other query is
// forwarded unchanged to an upstream resolver over the transport it arrived
// on. HTTPS (type 65) and SVCB (type 64) queries for intercepted names get an
// empty NOERROR answer: an HTTPS record could carry ECH keys (the ClientHello
// would then hide the real name from the proxy) or an h3 ALPN hint (the
// client would try QUIC, which the proxy does not carry); without them
// clients fall back to plain TCP TLS (RFC 9460, Section 3).
//
// The server remembers, per client IP, the last intercepted name it asked
// for ([Server.Recent]), so that a TLS connection without SNI can be matched
// to the name its client just resolved, and keeps a bounded log of its
// answers ([Server.Answers]).
//
// Interception is by the name asked for: a forwarded answer whose CNAME
// chain ends in an intercepted name is not rewritten, so intercept the name
// the client looks up (which is also the name it sends as SNI).
//
// Only clients in [Config.Allow] (default: loopback) are served, each at
// most [Config.RateLimit] queries a second; the others' UDP queries are
// dropped unanswered and their TCP connections closed, and counted
// ([Server.Refusals]). UDP answers never exceed 1232 bytes (a larger one is
// truncated, and the client asks again over TCP). So the server is no open
// resolver, and a spoofed query makes it send little, and only to a listed
// network.
//
// [NewForwarder] makes a server for tlsresume's WireGuard devices, whose
// DNS address is inside the tunnel: it listens on nothing and intercepts
// nothing; the queries its caller accepted are handed to it
// ([Server.ServeConn], one UDP datagram or a TCP stream) and forwarded,
// under the same rules, and it remembers per device which name each
// answered address was for ([Server.NameOf]), so that a connection to an
// address is told what its device looked up.
//
// [Resolver] gives tlsresume's own lookups a resolver that always asks the
// upstream, never this server.
//
// This is the only package of tlsresume that imports github.com/miekg/dns.
// It logs only through the zerolog.Logger it is given.
package dns
