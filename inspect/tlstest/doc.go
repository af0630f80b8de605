// Package tlstest is test support for every tlsresume package, as
// net/http/httptest is for HTTP: it drives the real TLS software on this
// machine, serves and dials on loopback, captures traffic and reads it back
// through tshark, runs a WireGuard client, and makes test certificates, a
// fake clock and hostile strings. Only tests import it.
//
// It imports no tlsresume package: records made by package inspect and by
// the proxy are checked against tshark's dissection and against JA4
// computed here from tshark's fields, so it must not lean on the code it
// checks, and inspect's own internal tests import it without a cycle. It
// reads its own captures with gopacket.
//
// Tools. Need finds a binary (also in /usr/sbin and /sbin); a missing one,
// or a missing permission, ends the test with Unavailable: a skip, or a
// failure when TLSRESUME_REQUIRE_CLIENTS=1 (RequireEnv; CI sets it).
// Command runs a tool in its own process group, bounded by a context, and
// Run and RunUntil collect its output; KillGroup, Buffer, Tail and FreePort
// serve the same.
//
// Servers and clients. StartGoServer (crypto/tls, one response per
// connection, Page for browsers) and StartOpenSSLServer (s_server) listen
// on 127.0.0.1. A Target points a client at one: OpenSSLClient,
// OpenSSLEarlyData, GnuTLSClient, Curl, Python and GoClient connect twice
// and return a Report per connection (did it resume); Chromium loads Page.
// DumpDOM is the one headless Chromium runner; it retries
// ERR_NETWORK_CHANGED (the network namespaces other tests make) and
// start-up exits. Tests that drive Chromium with chromedp load pages with
// Navigate, which retries ERR_NETWORK_CHANGED the same way.
//
// Captures. StartCapture and StartUDPCapture run tcpdump or dumpcap on lo
// for one port; Capture.Sync waits until everything sent is in the file,
// and Capture.Stop ends it, failing a capture that lost bytes. Dissect,
// DissectAs, DissectQUIC and QUICHelloStarts read a capture with tshark
// into Messages; Connections pairs each ClientHello with its ServerHello as
// a Hello, whose Attempt, Resumed and ResumedBy follow from tshark's fields
// alone; ClientHello.JA4 computes JA4 from them.
//
// Certificates. NewCert makes a self-signed ECDSA certificate as
// CertOptions says (names, IPs, validity, CA, client auth; the zero value
// is a server certificate for localhost and 127.0.0.1), Cert.Issue signs
// one with a CA, Cert.Pool trusts it, Cert.Write writes PEM files, and
// WriteCert does all that for localhost. MakeCert serves package-level
// certificates.
//
// DNS. StartDNS is a resolver on loopback answering A and AAAA from a
// table, for a test to point tlsresume's --dns-upstream at.
//
// WireGuard. StartWGPeer is a WireGuard client in this process, configured
// from a wg-quick text (ParseWGConf), as a phone's app: DialTCP, DialUDP
// and Resolver reach through its tunnel, loopback destinations included.
// It wraps proxy/wireguard/wgpeer, which cmd/loadbench uses too.
//
// Time. Clock is a fake clock for the Now options of certs, proxy/upstream
// and proxy/dns: NewClock, then Advance or Set.
//
// Text outputs. HostileSNI, HostileALPN and HostileUserAgent are values a
// peer can send to take over a terminal, each with the form a text output
// must show instead (…Shown); CheckTerminal fails a test whose output holds
// anything a terminal acts on, and TerminalHazard says what.
package tlstest
