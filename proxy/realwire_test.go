package proxy

import (
	"context"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// wireConn is one client connection as tshark dissected it on the
// client→proxy leg: the client's first ClientHello and how tlsresume
// answered it. It is the independent view each record is checked against.
type wireConn struct {
	port    int // the client's port
	hello   *tlstest.ClientHello
	version int  // negotiated: the ServerHello's supported_versions, else its legacy version
	resumed bool // TLS 1.3: the ServerHello selected a PSK; TLS 1.2: no Certificate followed it
	hrr     bool // tlsresume answered with a HelloRetryRequest
	sawSH   bool
	sawCert bool
}

// dissect has tshark read the capture at path and returns each client
// connection to proxyPort by client port. Decoding proxyPort as HTTP makes
// tshark follow the CONNECT: after the proxy's 200 it dissects the tunnel
// as TLS.
func dissect(t *testing.T, ctx context.Context, path string, proxyPort int) map[int]*wireConn {
	t.Helper()
	msgs, err := tlstest.DissectAs(ctx, tlstest.Need(t, "tshark"), path, proxyPort, "http")
	if err != nil {
		t.Fatal(err)
	}
	conns := map[int]*wireConn{}
	get := func(port int) *wireConn {
		if conns[port] == nil {
			conns[port] = &wireConn{port: port}
		}
		return conns[port]
	}
	for _, m := range msgs {
		switch {
		case m.DstPort == proxyPort && m.Type == tlstest.TypeClientHello:
			c := get(m.SrcPort)
			if c.hello == nil { // the first hello; a second one follows a HelloRetryRequest
				c.hello = m.ClientHello()
			}
		case m.SrcPort == proxyPort && m.Type == tlstest.TypeServerHello:
			c := get(m.DstPort)
			sh := m.ServerHello()
			c.sawSH = true
			c.version = sh.Version()
			if slices.Contains(sh.Extensions, 41) { // pre_shared_key: the server accepted a PSK
				c.resumed = true
			}
			c.hrr = c.hrr || sh.HRR()
		case m.SrcPort == proxyPort:
			c := get(m.DstPort)
			c.sawCert = c.sawCert || m.Type == tlstest.TypeCertificate
		}
	}
	for _, c := range conns {
		if c.version == 0x0303 || c.version == 0x0302 || c.version == 0x0301 {
			// A TLS 1.2 server sends its Certificate only in a full
			// handshake (RFC 5246, Section 7.3): none means it resumed.
			c.resumed = c.sawSH && !c.sawCert
		}
	}
	return conns
}

func atoi(s string) int {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil {
		return -1
	}
	return int(v)
}

// wireBytes are the TCP payload bytes of one client connection, less the
// CONNECT request and the proxy's reply: what the record counts.
type wireBytes struct {
	up, down int
	// unread is the client's closing alert (close_notify) when it is the
	// last thing the client sent: it races the proxy's own close, and the
	// proxy counts only what it read ("as read from the client", record.go).
	unread int
}

// tunnelBytes has tshark list each connection's TCP segments, rebuilds both
// byte streams by sequence number (retransmissions happen even on
// loopback: gVisor's netstack), and takes off the CONNECT request (up to
// its blank line) and the proxy's reply.
func tunnelBytes(t *testing.T, ctx context.Context, path string, proxyPort int) map[int]wireBytes {
	t.Helper()
	out, _, err := tlstest.Run(ctx, "", tlstest.Need(t, "tshark"), "-r", path, "-n", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.payload")
	if err != nil {
		t.Fatal(err)
	}
	type conn struct {
		up, down []byte
		last     []byte // the client's segment that ends its stream
	}
	// put writes b at relative sequence number seq (1 is the first byte).
	put := func(stream []byte, seq int, b []byte) []byte {
		end := seq - 1 + len(b)
		if end > len(stream) {
			stream = append(stream, make([]byte, end-len(stream))...)
		}
		copy(stream[seq-1:], b)
		return stream
	}
	conns := map[int]*conn{}
	get := func(port int) *conn {
		if conns[port] == nil {
			conns[port] = &conn{}
		}
		return conns[port]
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("tshark printed %q", line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(f[3], ":", ""))
		if err != nil {
			t.Fatalf("tshark payload %q: %v", tlstest.Tail(f[3], 40), err)
		}
		seq := atoi(f[2])
		switch src, dst := atoi(f[0]), atoi(f[1]); {
		case dst == proxyPort && len(b) > 0:
			c := get(src)
			if seq-1+len(b) >= len(c.up) {
				c.last = b
			}
			c.up = put(c.up, seq, b)
		case src == proxyPort:
			c := get(dst)
			if len(b) > 0 {
				c.down = put(c.down, seq, b)
			}
		}
	}
	res := map[int]wireBytes{}
	for port, c := range conns {
		req := strings.Index(string(c.up), "\r\n\r\n") + 4
		reply := strings.Index(string(c.down), "\r\n\r\n") + 4
		if req < 4 || reply < 4 {
			t.Fatalf("client port %d: no CONNECT request or reply in the capture", port)
		}
		w := wireBytes{up: len(c.up) - req, down: len(c.down) - reply}
		if isAlertRecord(c.last) {
			w.unread = len(c.last)
		}
		res[port] = w
	}
	return res
}

// isAlertRecord reports whether b is exactly one TLS record holding an
// alert: content type alert (21), or in TLS 1.3 an encrypted record (23)
// of 19 bytes, an alert's 2 bytes, its inner type and a 16-byte AEAD tag
// (RFC 8446, Section 5.2).
func isAlertRecord(b []byte) bool {
	if len(b) < 5 || int(b[3])<<8|int(b[4]) != len(b)-5 {
		return false
	}
	return b[0] == 21 || b[0] == 23 && len(b)-5 == 19
}
