package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"

	"golang.org/x/net/http2"
)

// pairTransport relays a client connection's HTTP over its own upstream
// connection; more are dialled (and counted) only when HTTP needs them.
//
// The origin's TLS 1.3 tickets arrive after the handshake and crypto/tls
// stores them only when the connection is read. A client that opens a
// connection and sends nothing for a while (a browser's preconnect, an
// idle second s_client) would leave the upstream ticket unread, and the
// next connection could not resume upstream. So the upstream connection is
// read from the end of its handshake (ticketSip, origin.go) until HTTP
// takes it: HTTP/2 by golang.org/x/net/http2's ClientConn, whose read loop
// starts at once, HTTP/1.1 with the first request.
type pairTransport struct {
	c     *conn
	oc    *originConn
	mu    sync.Mutex
	h1    *http.Transport // the origin speaks HTTP/1.1 (or no ALPN)
	first *originConn     // h1: the upstream connection, handed out once
	h2t   *http2.Transport
	h2    *http2.ClientConn // the origin speaks h2
	more  []*originConn
}

func newPairTransport(c *conn, oc *originConn) (*pairTransport, error) {
	t := &pairTransport{c: c, oc: oc}
	if oc.tls.ConnectionState().NegotiatedProtocol == "h2" {
		t.h2t = &http2.Transport{DisableCompression: true}
		cc, err := t.h2t.NewClientConn(oc.take())
		if err != nil {
			return t, err
		}
		t.h2 = cc
		return t, nil
	}
	t.first = oc // taken with the first request: the sip reads until then
	t.h1 = &http.Transport{
		Proxy:               nil,
		DialTLSContext:      t.dialTLS,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     c.s.cfg.IdleTimeout,
	}
	return t, nil
}

func (t *pairTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.h2t == nil {
		return t.h1.RoundTrip(req)
	}
	cc, err := t.h2Conn(req.Context())
	if err != nil {
		return nil, err
	}
	return cc.RoundTrip(req)
}

// h2Conn returns a usable HTTP/2 connection, dialling a new one when the
// origin closed the last (GOAWAY, idle timeout).
func (t *pairTransport) h2Conn(ctx context.Context) (*http2.ClientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h2.CanTakeNewRequest() {
		return t.h2, nil
	}
	oc, err := t.dialMore(ctx, "h2")
	if err != nil {
		return nil, err
	}
	cc, err := t.h2t.NewClientConn(oc.tls)
	if err != nil {
		return nil, err
	}
	t.h2 = cc
	return cc, nil
}

// dialTLS gives http.Transport the upstream connection, then new ones.
func (t *pairTransport) dialTLS(ctx context.Context, _, _ string) (net.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if first := t.first; first != nil {
		t.first = nil
		return first.take(), nil
	}
	oc, err := t.dialMore(ctx, t.oc.tls.ConnectionState().NegotiatedProtocol)
	if err != nil {
		return nil, err
	}
	return oc.tls, nil
}

// dialMore makes a further upstream connection for this client connection,
// speaking alpn, as the first one negotiated. t.mu is held.
func (t *pairTransport) dialMore(ctx context.Context, alpn string) (*originConn, error) {
	c := t.c
	offer := c.offer
	offer.alpn = nil
	if alpn != "" {
		offer.alpn = []string{alpn}
	}
	oc, _, err := c.s.newOriginConn(ctx, c, offer)
	c.noteExtraHandshake()
	if err != nil {
		return nil, err
	}
	t.more = append(t.more, oc)
	return oc, nil
}

// close ends the transport's upstream connections.
func (t *pairTransport) close() {
	if t.h1 != nil {
		t.h1.CloseIdleConnections()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h2 != nil {
		t.h2.Close()
	}
	for _, oc := range t.more {
		oc.tls.Close()
	}
}
