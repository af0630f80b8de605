package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// errTLSToProxy is the record's error for a connection whose client spoke
// TLS to the proxy port itself instead of HTTP.
var errTLSToProxy = errors.New("this client speaks TLS to the proxy itself (curl -x https://…): tlsresume's proxy port speaks plain HTTP; use -x http://…")

// tlsToProxy watches the connections of the CONNECT listener: a client
// told that the proxy is https://… (curl -x https://PROXY, a proxy
// setting with the wrong scheme) sends a TLS ClientHello where an HTTP
// request belongs. net/http would answer it "400 Bad Request" in plain
// text, which the client cannot read, and nothing would be recorded. So the
// first bytes each connection sends are looked at as net/http reads them:
// a TLS handshake record takes the connection off net/http and onto the
// main path, which records it with errTLSToProxy.
type tlsToProxy struct {
	net.Listener
	s *Server
}

func (l *tlsToProxy) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &firstBytesConn{Conn: c, s: l.s}, nil
}

// firstBytesConn is an accepted connection whose first read is looked at.
type firstBytesConn struct {
	net.Conn
	s     *Server
	read  bool        // the first bytes were read (net/http reads on one goroutine at a time)
	taken atomic.Bool // handed to the main path: net/http's Close leaves it open
}

func (c *firstBytesConn) Read(b []byte) (int, error) {
	if c.read {
		return c.Conn.Read(b)
	}
	n, err := c.Conn.Read(b)
	if n == 0 {
		return n, err
	}
	c.read = true
	if b[0] != 22 || !c.s.track(c.Conn) { // 22: a TLS handshake record (RFC 8446, Section 5.1)
		return n, err
	}
	c.taken.Store(true)
	a := arrival{conn: c.Conn, read: bytes.Clone(b[:n]), source: inspect.SourceConnect, err: errTLSToProxy}
	go func() {
		// The answer net/http would give, with the reason: a TLS client
		// reads its first bytes as a record header, and says "wrong version
		// number" (OpenSSL), the usual clue to a proxy named https://.
		a.conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(a.conn, tlsToProxyReply)
		a.conn.SetWriteDeadline(time.Time{})
		c.s.serve(a)
	}()
	return 0, io.EOF // net/http lets it go without a word
}

var tlsToProxyReply = fmt.Sprintf("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"+
	"Content-Length: %d\r\n\r\n%s\n", len(errTLSToProxy.Error())+1, errTLSToProxy)

func (c *firstBytesConn) Close() error {
	if c.taken.Load() {
		return nil
	}
	return c.Conn.Close()
}

// NetConn returns the accepted connection.
func (c *firstBytesConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes the connection.
func (c *firstBytesConn) CloseWrite() error { return closeWrite(c.Conn) }
