package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// requestTimeout bounds every request, connection setup included.
const requestTimeout = 5 * time.Second

// dialer opens TLS connections to the origin as one contender's clients do:
// straight to the origin, through an HTTP CONNECT proxy, or through a
// WireGuard tunnel straight to the origin's address.
type dialer struct {
	proxy  string         // proxy host:port; "" dials the origin directly
	origin string         // the origin's host:port
	roots  *x509.CertPool // trusts the origin's CA, or the proxy's
	rss    func() float64 // the proxy process's resident memory now (MB); nil for direct
	// peer, when set, is a WireGuard device in this process: every
	// connection goes through its tunnel to the origin's address, and the
	// proxy at the tunnel's far end takes it as it takes a transparent one
	// (no CONNECT).
	peer *wgpeer.Peer
}

// dial connects and completes a TLS handshake offering alpn, resuming
// from cache when it holds a session (nil: no cache, a full handshake).
func (d *dialer) dial(ctx context.Context, cache tls.ClientSessionCache, alpn []string) (*tls.Conn, error) {
	addr := d.origin
	if d.proxy != "" {
		addr = d.proxy
	}
	var (
		raw net.Conn
		err error
	)
	if d.peer != nil {
		raw, err = d.peer.DialContext(ctx, "tcp", addr)
	} else {
		var nd net.Dialer
		raw, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	conn := raw
	if d.proxy != "" {
		if conn, err = connectTunnel(raw, d.origin); err != nil {
			raw.Close()
			return nil, err
		}
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName:         serverName,
		RootCAs:            d.roots,
		ClientSessionCache: cache,
		NextProtos:         alpn,
	})
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

// connectTunnel asks the proxy on raw for a tunnel to target.
func connectTunnel(raw net.Conn, target string) (net.Conn, error) {
	if _, err := fmt.Fprintf(raw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		return nil, fmt.Errorf("writing CONNECT: %w", err)
	}
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("reading the CONNECT reply: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: raw, r: br}, nil
	}
	return raw, nil
}

// bufferedConn reads what bufio already holds before the connection.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// sample is what one request did.
type sample struct {
	bytes   int64
	resumed bool
}

// getFresh fetches path over a new connection (HTTP/1.1, Connection:
// close) and closes it.
func (d *dialer) getFresh(ctx context.Context, cache tls.ClientSessionCache, path string) (sample, error) {
	tc, err := d.dial(ctx, cache, []string{"http/1.1"})
	if err != nil {
		return sample{}, err
	}
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+d.origin+path, nil)
	if err != nil {
		return sample{}, err
	}
	req.Close = true
	if err := req.Write(tc); err != nil {
		return sample{}, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		return sample{}, fmt.Errorf("reading the response: %w", err)
	}
	n, err := readBody(resp)
	return sample{bytes: n, resumed: tc.ConnectionState().DidResume}, err
}

// readBody drains a response and checks its status.
func readBody(resp *http.Response) (int64, error) {
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return n, fmt.Errorf("reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %s", resp.Status)
	}
	return n, nil
}

// client is a keep-alive net/http client whose connections go through d,
// offering alpn ("h2" makes it speak HTTP/2 when the server agrees).
func (d *dialer) client(alpn []string) *http.Client {
	tr := &http.Transport{
		Proxy: nil, // never the environment's proxy: all traffic stays on loopback
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			return d.dial(ctx, nil, alpn)
		},
		ForceAttemptHTTP2:   slices.Contains(alpn, "h2"),
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// get fetches path on a keep-alive client.
func (d *dialer) get(ctx context.Context, c *http.Client, path string) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+d.origin+path, nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return sample{}, err
	}
	n, err := readBody(resp)
	return sample{bytes: n}, err
}
