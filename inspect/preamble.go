package inspect

import "bytes"

// maxPreamble bounds the bytes held while looking for the end of a proxy
// handshake in front of TLS.
const maxPreamble = 8 << 10

// preamble strips what a proxy protocol puts in front of TLS in a captured
// stream: an HTTP CONNECT request or its response (RFC 9110, Section 9.3.6),
// or a SOCKS4/4a or SOCKS5 exchange (RFC 1928, RFC 1929). A capture of a
// phone talking to a proxy, tlsresume included, looks like this.
type preamble struct {
	client  bool
	buf     []byte
	done    bool // TLS (or give-up) reached; pass bytes through
	dropped bool // not TLS and no known preamble: drop the direction
}

// strip returns the bytes that follow the preamble, possibly none yet.
func (p *preamble) strip(data []byte) []byte {
	if p.done {
		return data
	}
	if p.dropped {
		return nil
	}
	p.buf = append(p.buf, data...)
	n := preambleLen(p.buf, p.client)
	switch {
	case n == 0:
		p.done = true
	case n > 0:
		p.done = true
		rest := p.buf[n:]
		p.buf = nil
		return rest
	case n == needMore && len(p.buf) < maxPreamble:
		return nil
	default:
		p.dropped = true
		p.buf = nil
		return nil
	}
	rest := p.buf
	p.buf = nil
	return rest
}

const (
	needMore = -1
	notOurs  = -2
)

// preambleLen returns how many bytes of b precede the TLS stream (0 when b
// starts with a TLS record), needMore, or notOurs.
func preambleLen(b []byte, client bool) int {
	if len(b) == 0 {
		return needMore
	}
	if b[0] == recordHandshake || b[0] == recordAlert {
		return 0
	}
	switch {
	case hasPrefixOrPart(b, "CONNECT ") && client, hasPrefixOrPart(b, "HTTP/1.") && !client:
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			if len(b) < 8 || bytes.HasPrefix(b, []byte("CONNECT ")) || bytes.HasPrefix(b, []byte("HTTP/1.")) {
				return needMore
			}
			return notOurs
		}
		return i + 4
	case b[0] == 5 && client:
		return socks5Client(b)
	case b[0] == 5:
		return socks5Server(b)
	case b[0] == 4 && client:
		return socks4Client(b)
	case b[0] == 0 && !client:
		if len(b) < 8 {
			return needMore
		}
		return 8 // SOCKS4 reply: VN=0, CD, DSTPORT, DSTIP
	}
	return notOurs
}

func hasPrefixOrPart(b []byte, p string) bool {
	n := min(len(b), len(p))
	return string(b[:n]) == p[:n]
}

// socks5Client: greeting, optional username/password, then the request.
func socks5Client(b []byte) int {
	off := 0
	if len(b) < 2 {
		return needMore
	}
	off = 2 + int(b[1])
	if len(b) < off+1 {
		return needMore
	}
	if b[off] == 1 { // RFC 1929 username/password
		if len(b) < off+2 {
			return needMore
		}
		ulen := int(b[off+1])
		if len(b) < off+3+ulen {
			return needMore
		}
		off += 3 + ulen + int(b[off+2+ulen])
	}
	n := socksAddrRequest(b[off:])
	if n < 0 {
		return n
	}
	return off + n
}

// socks5Server: method choice, optional auth status, then the reply.
func socks5Server(b []byte) int {
	if len(b) < 3 {
		return needMore
	}
	off := 2
	if b[off] == 1 { // auth status
		off += 2
	}
	n := socksAddrRequest(b[off:])
	if n < 0 {
		return n
	}
	return off + n
}

// socksAddrRequest measures a SOCKS5 request or reply: VER CMD RSV ATYP
// DST.ADDR DST.PORT (RFC 1928, Sections 4 and 6).
func socksAddrRequest(b []byte) int {
	if len(b) < 5 {
		return needMore
	}
	if b[0] != 5 {
		return notOurs
	}
	var addr int
	switch b[3] {
	case 1:
		addr = 4
	case 3:
		addr = 1 + int(b[4])
	case 4:
		addr = 16
	default:
		return notOurs
	}
	n := 4 + addr + 2
	if len(b) < n {
		return needMore
	}
	return n
}

// socks4Client: VN CD DSTPORT DSTIP USERID NUL, and for SOCKS4a (DSTIP
// 0.0.0.x) a host name NUL.
func socks4Client(b []byte) int {
	if len(b) < 9 {
		return needMore
	}
	i := bytes.IndexByte(b[8:], 0)
	if i < 0 {
		return needMore
	}
	n := 8 + i + 1
	if b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] != 0 {
		j := bytes.IndexByte(b[n:], 0)
		if j < 0 {
			return needMore
		}
		n += j + 1
	}
	return n
}
