package proxy

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// arrival is what every source hands the main path: the client
// connection, where it was going, and what kind of source it came from.
// CONNECT names a target; a transparent listener knows the original
// destination; an SNI listener knows neither, and the hello must say.
type arrival struct {
	conn   net.Conn
	read   []byte         // bytes the source already read from conn (past a CONNECT request)
	target string         // host:port the client named (CONNECT)
	dst    netip.AddrPort // the original destination (transparent)
	source inspect.Source
	err    error // the source could not tell where the connection was going, or refused it

	device, dnsName string        // a WireGuard device's name, and the name it looked up for dst (HandleConn)
	silence         time.Duration // a client silent this long is relayed untouched (Arrival.ClientSilence)
}

// errLegSays ends a connection whose record already says why, in one of
// its legs (a client that rejected tlsresume's certificate, an origin that
// failed, answered with a 502): the record gets no error of its own.
var errLegSays = errors.New("proxy: the connection ended; its legs say why")

// serve runs one client connection through the main path, from its
// arrival to its published record. Every ending goes through the one
// deferred finish.
func (s *Server) serve(a arrival) {
	c := s.newConn(a)
	defer c.finish()
	if err := c.run(); err != nil && !errors.Is(err, errLegSays) && c.err == nil {
		c.err = err
	}
}

// run is the main path, step by step, in the order of its files:
//
//	peek      peek.go       read the ClientHello without answering it
//	route     route.go      where the connection goes; record the offer
//	decide    decide.go     intercept, pass through, or relay untouched
//	upstream  upstream.go   the upstream leg: a connection of its own, or the pool's
//	client    clientleg.go  terminate the client's TLS, mirroring the origin; both legs stand
//	relay     relay.go      serve its HTTP, or relay its bytes
//	finish    finish.go     complete the record, learn from it, publish it
//
// Each step returns an error or an outcome; none closes the connection, and
// each step's file is entered once, in this order (the helpers they call
// live in other files).
func (c *conn) run() error {
	if c.err != nil {
		return c.err // the source could not tell where it was going
	}
	if err := c.peek(); err != nil {
		return err
	}
	c.route()
	switch how, err := c.decide(); how {
	case refuse:
		return err
	case relayUntouched:
		return c.relayUntouched()
	case passThrough:
		return c.passThrough()
	}
	if err := c.openUpstream(); err != nil {
		return c.answerFailure(err)
	}
	if c.passThroughAfterAll() {
		return c.passThrough()
	}
	tc, err := c.handshakeClient()
	if tc != nil {
		defer tc.Close()
	}
	if err != nil {
		return err
	}
	// The parsed hello points into the bytes peeked before TLS; nothing
	// after the client's handshake reads it (the record holds what it
	// showed), and a held connection would keep them for its life.
	c.hello = inspect.ClientHello{}
	return c.relay(tc)
}
