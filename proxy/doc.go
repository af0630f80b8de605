// Package proxy is tlsresume's running system: the listeners every client
// connection arrives by, the one main path each takes from its arrival to
// its record, and the record events that any number of readers subscribe
// to (Server.Subscribe: the --log file, the live view), none of which can
// slow a connection. It logs only through the zerolog.Logger it is given.
//
// # The main path
//
// Data flows one way: listener → peek → record → terminate → upstream →
// record → report. Every source hands the path the same arrival (a client
// connection, where it was going, what kind of source it is), and
// Server.serve runs the steps over one per-connection state (conn) in the
// order of their files:
//
//	sources     server.go (ServeHTTP: CONNECT and forward requests),
//	            connect.go (a CONNECT tunnel), listeners.go (transparent, SNI, Host),
//	            arrive.go (HandleConn: sources the proxy does not listen for, WireGuard),
//	            tlsatproxy.go (TLS spoken to the CONNECT listener itself),
//	            gate.go (every listener's admission: --allow, --max-conns, tracking)
//	path.go     serve and run: the steps in order, one deferred finish
//	peek.go     read the ClientHello without answering it; keep the bytes for replay
//	route.go    where the connection goes; the offer's record, published as "open"
//	decide.go   intercept, pass through, or relay untouched (the rules: passrules.go)
//	upstream.go the upstream leg, behind one seam (upstreamLeg); a session-ID
//	            client of a TLS 1.2 origin is passed through after all:
//	            pair.go, pairhttp.go: a connection of its own (answered ahead or after)
//	            pool.go, poolleg.go: --upstream-reuse pool's connections
//	clientleg.go terminate the client's TLS, mirroring the origin's answer; wait
//	            for an upstream handshake it was answered ahead of
//	relay.go    serve its HTTP through goproxy, or relay its bytes
//	finish.go   complete the record, learn from it, decide its verdict, publish it
//
// Each step returns an error or an outcome; none closes the connection.
// Off the intercepting path: untouched.go (not TLS, or passed through, with
// both hellos read), failpage.go (an origin that failed: a 502 over the
// client's own handshake).
//
// QUIC (a WireGuard device's UDP to port 443) takes a path of its own,
// for there is no TLS to terminate: quic.go (HandleQUIC: relay the
// datagrams untouched, or drop them, --quic pass|block), quicflow.go
// (each datagram read as it passes by inspect.QUICFlow; one record per
// QUIC connection, its open event once its hello is read), finish.go
// (finishQUIC completes it; publish, shared with every connection,
// publishes it), quicfallback.go (a blocked connection and the TCP
// connection the app fell back to name each other). Beside it: origin.go (one TLS connection to an
// origin: its dial, its handshake, its ticket sip), netutil.go (the dial
// made while the hello arrives, counting connections), learned.go
// (what is learned across connections, of origins and clients),
// verdict.go, fix.go (what fixes a failure), lineage.go (ticket stamps),
// clienttickets.go (whether the client leg issues tickets), events.go (the record events),
// console.go and consoleline.go (the console and its line per connection),
// recordlog.go, gate.go (--allow and --max-conns), magic.go.
//
// # Words
//
// One word, one meaning, in code, records and messages:
//   - origin: the server a client wants to reach. "Upstream" is said only
//     of tlsresume's side of it, as the record and the flags name it: the
//     upstream leg (tlsresume's connection and handshake with the origin),
//     the upstream cache (that leg's session cache).
//   - early: 0-RTT data only (early_data). Answering a client with an
//     origin's known answer while the upstream handshake runs is
//     "answering ahead" (--mirror overlap); data an origin sends before the
//     client's first request is "the origin spoke first".
//   - tunnel: a CONNECT tunnel only. A connection that is not TLS is
//     "relayed untouched"; a TLS connection not intercepted is "passed
//     through".
//   - record: one connection's inspect.ConnRecord. The TLS records of the
//     wire are read by inspect's recordReader; the events carrying
//     connection records to subscribers are record events (events.go).
//   - learned: what the proxy learns across connections (learned.go).
//   - conn_id: the log field naming a connection, everywhere.
package proxy
