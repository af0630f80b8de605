package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/miekg/dns"
)

// NewForwarder returns a Server for queries that arrive on connections its
// caller accepted itself (tlsresume's WireGuard devices ask the tunnel's
// DNS address): it listens on nothing, answering each query handed to it
// (ServeConn) by forwarding it to cfg.Upstream as New's server forwards,
// and it remembers, per client, the name each answered address was for
// (NameOf). It intercepts only the names cfg.Intercept lists, answered
// with AnswerV4 and AnswerV6 (the tunnel's own tlsresume.proxy); none
// when Intercept is empty. cfg.Allow must name its clients' networks;
// cfg.Listen is not used. The caller sees that Upstream is not tlsresume's
// own DNS server.
func NewForwarder(cfg Config) (*Server, error) {
	cfg.forwardOnly = true
	cfg = cfg.withDefaults()
	if err := cfg.validate(defaultResolvConf); err != nil {
		return nil, err
	}
	s := newServer(cfg)
	if len(cfg.Intercept) == 0 || !cfg.AnswerV4.Is4() {
		s.match = matcher{patterns: []string{}} // matches nothing
	}
	s.names = newNames()
	return s, nil
}

// tcpIdle ends a TCP connection of ServeConn that sends no query for this
// long, as miekg/dns ends its own (its default idle timeout).
const tcpIdle = 8 * time.Second

// ServeConn answers the queries that arrive on c, a connection its caller
// accepted, as the server answers on its own listeners (Allow, the rate
// limit, the checks of a query, the answer's size). network "udp" means
// each Read of c returns one datagram: one query is read and answered,
// within 2 seconds. "tcp" reads queries prefixed by their length (RFC 1035,
// Section 4.2.2) until the client closes or sends nothing for 8 seconds,
// answering each in turn. c is not closed.
func (s *Server) ServeConn(c net.Conn, network string) error {
	switch network {
	case "udp":
		return s.serveDatagram(c)
	case "tcp":
		return s.serveStream(c)
	}
	return fmt.Errorf("dns: serving a connection over %q: want udp or tcp", network)
}

func (s *Server) serveDatagram(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, maxQuery+1) // a longer datagram reads as maxQuery+1 bytes: oversized
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("dns: reading a query: %w", err)
	}
	if !s.guard.admit(c.RemoteAddr(), "udp") {
		return nil // dropped unanswered, as on the server's own socket
	}
	s.answerRaw(&connWriter{c: c}, checkReader{s: s}.check(buf[:n], c.RemoteAddr()))
	return nil
}

func (s *Server) serveStream(c net.Conn) error {
	w := &connWriter{c: c, stream: true}
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("dns: reading a query's length: %w", err)
		}
		m := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, m); err != nil {
			return fmt.Errorf("dns: reading a query of %d bytes: %w", len(m), err)
		}
		if !s.guard.admit(c.RemoteAddr(), "tcp") {
			return errRateLimited
		}
		s.answerRaw(w, checkReader{s: s}.check(m, c.RemoteAddr()))
		if w.err != nil {
			return fmt.Errorf("dns: writing an answer: %w", w.err)
		}
	}
}

// answerRaw answers one query's bytes as miekg/dns's server does: what
// fails accept or does not parse gets FORMERR (NOTIMP for an opcode not
// served), a message whose header cannot be read gets nothing, and the
// rest goes to the handler.
func (s *Server) answerRaw(w *connWriter, m []byte) {
	if len(m) < 12 {
		s.invalid(m, errors.New("dns: message shorter than its header"))
		return
	}
	h := dns.Header{
		Id: binary.BigEndian.Uint16(m), Bits: binary.BigEndian.Uint16(m[2:]),
		Qdcount: binary.BigEndian.Uint16(m[4:]), Ancount: binary.BigEndian.Uint16(m[6:]),
		Nscount: binary.BigEndian.Uint16(m[8:]), Arcount: binary.BigEndian.Uint16(m[10:]),
	}
	action := s.accept(h)
	req := new(dns.Msg)
	if action == dns.MsgAccept {
		err := req.Unpack(m)
		if err == nil {
			handler{s}.ServeDNS(w, req)
			return
		}
		s.invalid(m, err)
		action = dns.MsgReject
	}
	if action == dns.MsgIgnore {
		return
	}
	req.Id, req.Opcode = h.Id, int(h.Bits>>11)&0xF
	resp := new(dns.Msg)
	resp.SetRcodeFormatError(req)
	if action == dns.MsgRejectNotImplemented {
		resp.Rcode = dns.RcodeNotImplemented
	}
	resp.Question = nil
	w.WriteMsg(resp)
}

// connWriter is the dns.ResponseWriter of ServeConn: each answer one
// datagram, or, on a stream, prefixed by its length.
type connWriter struct {
	c      net.Conn
	stream bool
	err    error // the first write that failed
}

var _ dns.ResponseWriter = (*connWriter)(nil)

func (w *connWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return fmt.Errorf("dns: packing an answer: %w", err)
	}
	_, err = w.Write(b)
	return err
}

func (w *connWriter) Write(b []byte) (int, error) {
	if w.stream {
		if len(b) > 0xFFFF {
			return 0, fmt.Errorf("dns: answer of %d bytes is too long for TCP", len(b))
		}
		b = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
	}
	w.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	n, err := w.c.Write(b)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *connWriter) LocalAddr() net.Addr  { return w.c.LocalAddr() }
func (w *connWriter) RemoteAddr() net.Addr { return w.c.RemoteAddr() }
func (w *connWriter) Close() error         { return w.c.Close() }
func (w *connWriter) TsigStatus() error    { return nil }
func (w *connWriter) TsigTimersOnly(bool)  {}
func (w *connWriter) Hijack()              {}
