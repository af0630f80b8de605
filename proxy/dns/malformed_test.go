package dns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// packQuery returns a query for name and qtype in wire form, with ID id.
func packQuery(t testing.TB, id uint16, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// header returns a 12-byte DNS header.
func header(id, flags, qd, an, ns, ar uint16) []byte {
	h := make([]byte, 12)
	for i, v := range []uint16{id, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(h[2*i:], v)
	}
	return h
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// malformed are queries the server must answer with rcode, or (rcode -1)
// not at all. They seed FuzzHandle too.
func malformed(t testing.TB) []struct {
	name  string
	pkt   []byte
	rcode int
} {
	q := packQuery(t, 0xBEEF, "www.intercepted.test.", dns.TypeA)
	label63 := append([]byte{63}, bytes.Repeat([]byte("a"), 63)...)
	const rd = 0x0100
	return []struct {
		name  string
		pkt   []byte
		rcode int
	}{
		{"empty", nil, -1},
		{"truncated header", q[:5], -1},
		{"header only, no question", header(0xBEEF, rd, 0, 0, 0, 0), dns.RcodeFormatError},
		{"question cut short", q[:len(q)-3], dns.RcodeFormatError},
		{"garbage after a header", cat(header(0xBEEF, rd, 1, 0, 0, 0), []byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9")), dns.RcodeFormatError},
		{"trailing bytes", cat(q, []byte("xyz")), dns.RcodeFormatError},
		{"rdata past the end", cat(header(0xBEEF, rd, 1, 0, 0, 1), q[12:], []byte{0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 9}), dns.RcodeFormatError},
		{"10 KB datagram", cat(q, make([]byte, 10*1024)), dns.RcodeFormatError},
		{"bad label type (0x40)", cat(header(0xBEEF, rd, 1, 0, 0, 0), []byte{0x40, 'a', 0, 0, 1, 0, 1}), dns.RcodeFormatError},
		{"name longer than 255", cat(header(0xBEEF, rd, 1, 0, 0, 0), label63, label63, label63, label63, []byte{0, 0, 1, 0, 1}), dns.RcodeFormatError},
		{"compression loop", cat(header(0xBEEF, rd, 1, 0, 0, 0), []byte{0xC0, 12, 0, 1, 0, 1}), dns.RcodeFormatError},
		{"pointer past the end", cat(header(0xBEEF, rd, 1, 0, 0, 0), []byte{0xC0, 0xFF, 0, 1, 0, 1}), dns.RcodeFormatError},
		{"two questions", cat(header(0xBEEF, rd, 2, 0, 0, 0), q[12:], q[12:]), dns.RcodeFormatError},
		{"records claimed but missing", cat(header(0xBEEF, rd, 1, 1, 0, 2), q[12:]), dns.RcodeFormatError},
		{"a response", cat(header(0xBEEF, 0x8180, 1, 0, 0, 0), q[12:]), -1},
		{"NOTIFY", cat(header(0xBEEF, 4<<11, 1, 0, 0, 0), q[12:]), dns.RcodeNotImplemented},
		{"UPDATE", cat(header(0xBEEF, 5<<11, 1, 0, 0, 0), q[12:]), dns.RcodeNotImplemented},
	}
}

func TestMalformed(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range malformed(t) {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				if network == "tcp" && len(tc.pkt) > 0xFFFF {
					t.Skip("does not fit a TCP length prefix")
				}
				reply, err := rawExchange(s.Addr(), network, tc.pkt, tc.rcode >= 0)
				switch {
				case tc.rcode < 0 && err == nil:
					t.Errorf("answered %d bytes, want no answer", len(reply))
				case tc.rcode < 0:
					// silence, as wanted
				case err != nil:
					t.Errorf("no answer (%v), want %s", err, rcodeText(tc.rcode))
				default:
					m := new(dns.Msg)
					if err := m.Unpack(reply); err != nil {
						t.Fatalf("unparseable answer: %v", err)
					}
					if m.Id != 0xBEEF || !m.Response || m.Rcode != tc.rcode {
						t.Errorf("answer ID %#x QR %v rcode %s, want 0xbeef, QR, %s", m.Id, m.Response, rcodeText(m.Rcode), rcodeText(tc.rcode))
					}
				}
				// The server keeps answering.
				if r := ask(t, s.Addr(), network, "www.intercepted.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
					t.Errorf("after the bad query: rcode %s", rcodeText(r.Rcode))
				}
			})
		}
	}
}

// rawExchange sends pkt as one UDP datagram or one length-prefixed TCP
// message and returns the reply. It waits 2s when a reply is expected,
// 300ms otherwise.
func rawExchange(addr, network string, pkt []byte, expect bool) ([]byte, error) {
	conn, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	wait := 300 * time.Millisecond
	if expect {
		wait = 2 * time.Second
	}
	conn.SetDeadline(time.Now().Add(wait))
	if network == "udp" {
		if _, err := conn.Write(pkt); err != nil {
			return nil, err
		}
		buf := make([]byte, 65535)
		n, err := conn.Read(buf)
		return buf[:n], err
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(pkt)))
	if _, err := conn.Write(append(msg, pkt...)); err != nil {
		return nil, err
	}
	var n uint16
	if err := binary.Read(conn, binary.BigEndian, &n); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(conn, buf)
	return buf, err
}

// TestTCPTruncatedStream: a TCP client that sends half a message and goes
// silent is dropped after the read timeout; others are served meanwhile.
func TestTCPTruncatedStream(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte{0, 100, 0xBE, 0xEF, 1}) // says 100 bytes, sends 3
	if r := ask(t, s.Addr(), "tcp", "api.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Errorf("other client: rcode %s", rcodeText(r.Rcode))
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("half-sent message: read %v, want the server to close the connection", err)
	}
}
