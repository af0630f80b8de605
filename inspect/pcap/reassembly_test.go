package pcap

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// hello is a stand-in for a ClientHello: a TLS record header and a body.
var hello = "\x16\x03\x01\x02\x58" + strings.Repeat("client hello body ", 34)[:600]

func cat(parts ...[]pkt) []pkt { return slices.Concat(parts...) }

func reversed(ps []pkt) []pkt {
	ps = slices.Clone(ps)
	slices.Reverse(ps)
	return ps
}

func TestReassembly(t *testing.T) {
	c := newConv(cli4, srv4)
	c6 := newConv(cli6, srv6)
	wrap := conv{cli: cli4, srv: srv4, cisn: 0xfffffff0, sisn: 0xffffffff}
	digits := strings.Repeat("0123456789", 4)
	tests := []struct {
		name      string
		link      layers.LinkType
		ng        bool
		opts      Options
		pkts      []pkt
		cli, srv  string
		cliGaps   []int // nil: none
		cliFrames []int // nil: not checked
		closed    int   // Closed segments per direction
	}{{
		name: "in order",
		pkts: cat(c.handshake(), []pkt{c.client(0, "hello"), c.server(0, "world!"), c.client(5, " again"),
			c.fin(true, 11), c.fin(false, 6)}),
		cli: "hello again", srv: "world!", cliFrames: []int{4, 6}, closed: 1,
	}, {
		name: "retransmission",
		pkts: cat(c.handshake(), []pkt{c.client(0, "ABCDEFGH"), c.client(0, "ABCD"), c.client(2, "CDEFGHIJ"),
			c.client(8, "IJKL"), c.client(0, "ABCDEFGHIJKL")}),
		cli: "ABCDEFGHIJKL", cliFrames: []int{4, 6, 7},
	}, {
		name: "out of order",
		pkts: cat(c.handshake(), []pkt{c.client(6, "GHI"), c.client(3, "DEF"), c.client(0, "ABC"), c.client(9, "JKL")}),
		cli:  "ABCDEFGHIJKL", cliFrames: []int{6, 6, 6, 7},
	}, {
		name: "out of order overlapping",
		pkts: cat(c.handshake(), []pkt{c.client(4, "EFGHIJ"), c.client(2, "CDEF"), c.client(8, "IJKL"),
			c.client(4, "EFGH"), c.client(1, "BCDEFGHIJKLM"), c.client(0, "ABCDE")}),
		cli: "ABCDEFGHIJKLM",
	}, {
		name: "split over many segments",
		pkts: cat(c.handshake(), c.split(0, hello, 7), []pkt{c.fin(true, len(hello)), c.fin(false, 0)}),
		cli:  hello, closed: 1,
	}, {
		name: "split and reversed",
		pkts: cat(c.handshake(), reversed(c.split(0, hello, 50))),
		cli:  hello,
	}, {
		name: "permanent gap closed by FINs",
		pkts: cat(c.handshake(), []pkt{c.client(0, "AAAA"), c.client(8, "CCCC"), c.fin(true, 12), c.fin(false, 0)}),
		cli:  "AAAACCCC", cliGaps: []int{4}, cliFrames: []int{4, 7}, closed: 1,
	}, {
		name: "permanent gap at end of capture",
		pkts: cat(c.handshake(), []pkt{c.client(0, "AAAA"), c.client(8, "CCCC"), c.client(16, "EEEE"), c.client(12, "DDDD")}),
		cli:  "AAAACCCCDDDDEEEE", cliGaps: []int{4}, cliFrames: []int{4, 5, 7, 6},
	}, {
		name: "permanent gap then RST",
		pkts: cat(c.handshake(), []pkt{c.client(0, "AAAA"), c.client(8, "CCCC"),
			{src: c.srv, dst: c.cli, seq: c.sisn + 1, flags: "R"}, c.client(4, "BBBB")}),
		cli: "AAAACCCC", cliGaps: []int{4}, cliFrames: []int{4, 6}, closed: 1,
	}, {
		name: "IPv6",
		pkts: cat(c6.handshake(), []pkt{c6.client(5, " again"), c6.client(0, "hello"), c6.server(0, "world!"),
			c6.fin(true, 11), c6.fin(false, 6)}),
		cli: "hello again", srv: "world!", closed: 1,
	}, {
		name: "Linux SLL", link: layers.LinkTypeLinuxSLL,
		pkts: cat(c.handshake(), reversed(c.split(0, hello, 100)), []pkt{c.server(0, "world!")}),
		cli:  hello, srv: "world!",
	}, {
		name: "pcapng", ng: true,
		pkts: cat(c.handshake(), c.split(0, hello, 333), []pkt{c.server(0, "world!")}),
		cli:  hello, srv: "world!",
	}, {
		name: "sequence wraparound",
		pkts: cat(wrap.handshake(), reversed(wrap.split(0, digits, 6)), []pkt{wrap.server(0, "ok")}),
		cli:  digits, srv: "ok",
	}, {
		name: "MaxBytes", opts: Options{MaxBytes: 10},
		pkts: cat(c.handshake(), []pkt{c.client(8, "89ABCD"), c.client(0, "01234567"), c.client(14, "EF"),
			c.fin(true, 16), c.fin(false, 0)}),
		cli: "0123456789", closed: 1,
	}, {
		name: "data on SYN (TCP Fast Open)",
		pkts: []pkt{{src: c.cli, dst: c.srv, seq: c.cisn, flags: "S", payload: []byte("early ")},
			{src: c.srv, dst: c.cli, seq: c.sisn, ack: c.cisn + 7, flags: "SA"}, c.client(6, "data")},
		cli: "early data",
	}, {
		name: "no handshake captured",
		pkts: []pkt{c.client(100, "mid"), c.client(103, "stream"), c.server(7, "reply")},
		cli:  "midstream", srv: "reply",
	}, {
		name: "ended connection ignores its tail",
		pkts: cat(c.handshake(), []pkt{c.client(0, "hello"), c.fin(true, 5), c.fin(false, 0),
			{src: c.cli, dst: c.srv, seq: c.cisn + 7, ack: c.sisn + 2, flags: "A"},
			c.fin(true, 5), c.client(0, "hello")}),
		cli: "hello", closed: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			link := tt.link
			if link == 0 {
				link = layers.LinkTypeEthernet
			}
			path := writeCapture(t, tt.ng, link, framesOf(t, link, tt.pkts)...)
			streams, st := collect(t, path, tt.opts)
			if st.Packets != len(tt.pkts) || st.TCPPackets != len(tt.pkts) {
				t.Errorf("stats %+v, want %d TCP packets", st, len(tt.pkts))
			}
			cli, srv := tt.pkts[0].src, tt.pkts[0].dst
			if cli.Port() == 443 {
				cli, srv = srv, cli
			}
			up := get(streams, cli.String()+">"+srv.String())
			down := get(streams, srv.String()+">"+cli.String())
			if string(up.data) != tt.cli {
				t.Errorf("client stream\n got %q\nwant %q", up.data, tt.cli)
			}
			if string(down.data) != tt.srv {
				t.Errorf("server stream\n got %q\nwant %q", down.data, tt.srv)
			}
			if !slices.Equal(up.gaps, tt.cliGaps) {
				t.Errorf("client gaps at %v, want %v", up.gaps, tt.cliGaps)
			}
			if len(down.gaps) > 0 {
				t.Errorf("server gaps at %v, want none", down.gaps)
			}
			if tt.cliFrames != nil && !slices.Equal(up.frames, tt.cliFrames) {
				t.Errorf("client frames %v, want %v", up.frames, tt.cliFrames)
			}
			if up.closed != tt.closed || (len(down.data) > 0 && down.closed != tt.closed) {
				t.Errorf("closed: client %d, server %d, want %d", up.closed, down.closed, tt.closed)
			}
			wantSYN := tt.pkts[0].flags == "S"
			if len(up.data) > 0 && up.syn != wantSYN || down.syn {
				t.Errorf("SYN: client %v, server %v, want %v and false", up.syn, down.syn, wantSYN)
			}
		})
	}
}

func get(streams map[string]*stream, k string) *stream {
	if s, ok := streams[k]; ok {
		return s
	}
	return &stream{}
}

// TestBufferBound checks that a hole is given up on once 256 KiB wait
// behind it, even when MaxBytes would let more through.
func TestBufferBound(t *testing.T) {
	c := newConv(cli4, srv4)
	chunk := strings.Repeat("x", 1000)
	ps := c.handshake()
	for i := 1; i < 300; i++ { // the first 1000 bytes are never captured
		ps = append(ps, c.client(i*1000, fmt.Sprintf("%04d", i)+chunk[4:]))
	}
	ps = append(ps, c.client(0, chunk)) // too late: the hole was given up on
	path := writeCapture(t, false, layers.LinkTypeEthernet, framesOf(t, layers.LinkTypeEthernet, ps)...)
	streams, _ := collect(t, path, Options{MaxBytes: 1 << 20})
	up := get(streams, cli4.String()+">"+srv4.String())
	if len(up.data) != 299*1000 || string(up.data[:4]) != "0001" || string(up.data[len(up.data)-1000:][:4]) != "0299" {
		t.Errorf("got %d bytes starting %q, want 299000 from chunk 0001", len(up.data), up.data[:min(4, len(up.data))])
	}
	if !slices.Equal(up.gaps, []int{0}) {
		t.Errorf("gaps at %v, want [0]", up.gaps)
	}
	// The bound was hit while the capture went on: the held bytes went out
	// before the later chunks, attributed to the frame that hit the bound.
	if up.frames[0] == len(ps) {
		t.Errorf("held bytes delivered only at the end of the capture (frame %d)", up.frames[0])
	}
}

// TestReusedTuple checks that a new SYN on the 4-tuple of an ended
// connection starts a new stream.
func TestReusedTuple(t *testing.T) {
	c := newConv(cli4, srv4)
	c2 := conv{cli: cli4, srv: srv4, cisn: 90000, sisn: 70000}
	ps := cat(c.handshake(), []pkt{c.client(0, "first"), c.fin(true, 5), c.fin(false, 0)},
		c2.handshake(), []pkt{c2.client(0, "second")})
	path := writeCapture(t, false, layers.LinkTypeEthernet, framesOf(t, layers.LinkTypeEthernet, ps)...)
	var got []string
	_, err := readFile(t, path, func(s Segment) error {
		if s.Src == cli4 {
			got = append(got, fmt.Sprintf("%s closed=%v syn=%v", s.Data, s.Closed, s.SYN))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first closed=false syn=true", " closed=true syn=true", "second closed=false syn=true"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestDefaultMaxBytes checks that the zero Options keep the first 256 KiB
// of each direction.
func TestDefaultMaxBytes(t *testing.T) {
	c := newConv(cli4, srv4)
	chunk := strings.Repeat("y", 1400)
	ps := c.handshake()
	for off := 0; off < 300<<10; off += len(chunk) {
		ps = append(ps, c.server(off, chunk))
	}
	path := writeCapture(t, true, layers.LinkTypeEthernet, framesOf(t, layers.LinkTypeEthernet, ps)...)
	streams, _ := collect(t, path, Options{})
	if n := len(get(streams, srv4.String()+">"+cli4.String()).data); n != 256<<10 {
		t.Errorf("server stream of %d bytes, want %d", n, 256<<10)
	}
}

// TestConnLimit checks that when too many connections are tracked the
// least recently active one is forgotten, after delivering what it held.
func TestConnLimit(t *testing.T) {
	link := layers.LinkTypeRaw
	c := newConv(cli4, srv4)
	frames := framesOf(t, link, cat(c.handshake(), []pkt{c.client(4, "EFGH")}))
	for i := range maxConns {
		other := newConv(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 50000), srv4)
		frames = append(frames, frame(t, link, other.client(0, "x")))
	}
	frames = append(frames, frame(t, link, c.client(8, "IJ"))) // a new connection now
	path := writeCapture(t, false, link, frames...)
	var got []string
	_, err := readFile(t, path, func(s Segment) error {
		if s.Src == cli4 {
			got = append(got, fmt.Sprintf("%s gap=%v frame=%d", s.Data, s.Gap, s.Frame))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"EFGH gap=true frame=4", "IJ gap=false frame=65541"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
