package inspect

import (
	"io"
	"net/netip"
	"slices"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// CaptureStats counts what ReadCapture saw.
type CaptureStats struct {
	pcap.Stats
	Connections     int // TCP connections followed: they started with a SYN or a hello
	QUICConnections int // QUIC connections followed: they started with a client's Initial
}

// ReadCapture reads a pcap or pcapng capture and calls fn with one Record
// per ClientHello, in the order their verdicts became known. Records carry
// source "pcap". Session IDs issued by a server earlier in the capture make
// later offers of them count as attempts.
func ReadCapture(r io.Reader, fn func(*Record) error) (CaptureStats, error) {
	cr := captureReader{
		conns:   make(map[connKey]*captureConn),
		quic:    make(map[connKey]*captureFlow),
		history: NewSessionHistory(0),
		fn:      fn,
	}
	st, err := pcap.Read(r, pcap.Options{UDP: cr.datagram}, cr.segment)
	if err == nil {
		err = cr.closeAll()
	}
	return CaptureStats{Stats: st, Connections: cr.next - cr.quicConns, QUICConnections: cr.quicConns}, err
}

// connKey names a TCP connection regardless of direction.
type connKey struct{ a, b netip.AddrPort }

func keyOf(src, dst netip.AddrPort) connKey {
	if src.Compare(dst) < 0 {
		return connKey{src, dst}
	}
	return connKey{dst, src}
}

type captureConn struct {
	conv   *Conversation
	client netip.AddrPort
	pre    [2]preamble // proxy handshakes in front of TLS, per direction
	gap    [2]bool     // a direction lost bytes: stop reading it
	closed [2]bool
	order  int
}

type captureReader struct {
	conns     map[connKey]*captureConn
	quic      map[connKey]*captureFlow // by UDP 4-tuple
	quicAge   []quicAged               // QUIC connections, oldest first, for maxQUICConns
	next      int                      // connections of both kinds, in order of appearance
	quicConns int
	history   *SessionHistory
	fn        func(*Record) error
	err       error // first error from fn
}

func (cr *captureReader) segment(s pcap.Segment) error {
	k := keyOf(s.Src, s.Dst)
	c := cr.conns[k]
	if c == nil {
		client, ok := whoIsClient(s)
		if !ok {
			return nil // not (yet) recognizably TLS
		}
		server := s.Dst
		if client != s.Src {
			server = s.Src
		}
		c = &captureConn{client: client, order: cr.next}
		c.pre[0].client = true
		cr.next++
		c.conv = &Conversation{
			Source: SourcePcap, ClientAddr: client.String(), ServerAddr: server.String(),
			History: cr.history, Emit: cr.emit,
		}
		cr.conns[k] = c
	}
	dir := 0
	if s.Src != c.client {
		dir = 1
	}
	if s.Gap {
		c.gap[dir] = true
	}
	if data := c.pre[dir].strip(s.Data); len(data) > 0 && !c.gap[dir] {
		if dir == 0 {
			c.conv.Client(data, s.Time, s.Frame)
		} else {
			c.conv.Server(data, s.Time, s.Frame)
		}
	}
	if s.Closed {
		c.closed[dir] = true
		if c.closed[0] && c.closed[1] {
			c.conv.Close()
			delete(cr.conns, k)
		}
	}
	return cr.err
}

// whoIsClient decides which end of a new connection is the client: the one
// that sent the SYN, or else the one whose first bytes are a ClientHello
// or a CONNECT request.
func whoIsClient(s pcap.Segment) (netip.AddrPort, bool) {
	if s.SYN {
		return s.Src, true
	}
	d := s.Data
	if hasPrefixOrPart(d, "CONNECT ") && len(d) >= 8 {
		return s.Src, true
	}
	if len(d) >= 6 && d[0] == recordHandshake && d[1] == 3 {
		switch d[5] {
		case typeClientHello:
			return s.Src, true
		case typeServerHello:
			return s.Dst, true
		}
	}
	return netip.AddrPort{}, false
}

func (cr *captureReader) emit(r *Record) {
	if cr.err == nil {
		cr.err = cr.fn(r)
	}
}

// closeAll ends the connections still open when the capture ended, oldest first.
func (cr *captureReader) closeAll() error {
	type ender struct {
		order int
		close func()
	}
	open := make([]ender, 0, len(cr.conns)+len(cr.quic))
	for _, c := range cr.conns {
		open = append(open, ender{c.order, c.conv.Close})
	}
	for _, f := range cr.quic {
		open = append(open, ender{f.order, f.flow.Close})
	}
	slices.SortFunc(open, func(a, b ender) int { return a.order - b.order })
	for _, e := range open {
		e.close()
	}
	return cr.err
}
