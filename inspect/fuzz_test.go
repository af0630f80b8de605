package inspect

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// goClientHello records the first flight of a real crypto/tls client.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, cfg).Handshake()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := ReadClientHello(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// corpusClientStreams returns the first bytes each client sent in the
// corpus captures that begin with a TLS handshake record: real hellos from
// browsers, curl, Apple's stack and more.
func corpusClientStreams(t testing.TB) [][]byte {
	dir := filepath.Join("..", "..", "shared", "corpora", "ja4corpus")
	paths, _ := filepath.Glob(filepath.Join(dir, "captures", "*.pcap*"))
	apple, _ := filepath.Glob(filepath.Join(dir, "apple", "captures", "*.pcap"))
	var out [][]byte
	for _, p := range append(paths, apple...) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		streams := map[string][]byte{}
		pcap.Read(f, pcap.Options{MaxBytes: 4096}, func(s pcap.Segment) error {
			k := s.Src.String() + s.Dst.String()
			streams[k] = append(streams[k], s.Data...)
			return nil
		})
		f.Close()
		for _, b := range streams {
			if len(b) > 5 && b[0] == recordHandshake && b[5] == typeClientHello {
				out = append(out, b)
			}
		}
	}
	return out
}

func seedHellos(f *testing.F) [][]byte {
	seeds := [][]byte{
		records(recordHandshake, opensslResume.marshal(), 1<<14),
		records(recordHandshake, urlSession.marshal(), 100),
		records(recordHandshake, gnutls.marshal(), 1<<14),
		records(recordHandshake, chromium.marshal(), 1<<14),
		goClientHello(f, &tls.Config{ServerName: "a.test", NextProtos: []string{"h2"}}),
		goClientHello(f, &tls.Config{ServerName: "a.test", MaxVersion: tls.VersionTLS12}),
	}
	return append(seeds, corpusClientStreams(f)...)
}

func FuzzReadClientHello(f *testing.F) {
	for _, s := range seedHellos(f) {
		f.Add(s)
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, raw, err := ReadClientHello(bytes.NewReader(data))
		if !bytes.HasPrefix(data, raw) {
			t.Fatalf("raw is not what was read")
		}
		if err != nil {
			var re *ReadError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *ReadError", err)
			}
			return
		}
		if msg[0] != typeClientHello || len(msg) > maxHelloLen+4 {
			t.Fatalf("returned a message of type %d, %d bytes", msg[0], len(msg))
		}
	})
}

func FuzzClientHello(f *testing.F) {
	for _, s := range seedHellos(f) {
		if msg, _, err := ReadClientHello(bytes.NewReader(s)); err == nil {
			f.Add(msg)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h ClientHello
		if err := h.Unmarshal(msg); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(msg) {
				t.Fatalf("error %v: want a *ParseError with an offset inside the message", err)
			}
			return
		}
		// The extension block re-adds up: every byte is accounted for.
		n := 4 + 2 + 32 + 1 + len(h.SessionID) + 2 + 2*len(h.CipherSuites) + 1 + len(h.CompressionMethods)
		if len(h.Extensions) > 0 || len(msg) > n {
			n += 2
		}
		for _, e := range h.Extensions {
			n += 4 + len(e.Data)
		}
		if n != len(msg) {
			t.Fatalf("parsed fields cover %d bytes of %d", n, len(msg))
		}
		r := NewClientHelloRecord(&h, AttemptOf(&h, false), Fingerprint(&h, TransportTCP))
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzServerHello(f *testing.F) {
	f.Add(testServerHello(VersionTLS13, make([]byte, 32), false, testExt{ExtPreSharedKey, []byte{0, 0}}))
	f.Add(testServerHello(VersionTLS13, make([]byte, 32), true, testExt{ExtKeyShare, []byte{0, 0x1d}}))
	f.Add(testServerHello(VersionTLS12, sid, false, extEmpty(ExtSessionTicket), extALPN("h2")))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var s ServerHello
		if err := s.Unmarshal(msg); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if _, err := json.Marshal(NewServerHelloRecord(&s)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzConversation feeds arbitrary client and server bytes, in chunks, and
// checks that every hello is recorded exactly once.
func FuzzConversation(f *testing.F) {
	f.Add(records(recordHandshake, opensslResume.marshal(), 1<<14),
		hs(testServerHello(VersionTLS13, nil, false, testExt{ExtPreSharedKey, []byte{0, 0}})), uint8(7))
	f.Add(concat(hs(gnutls.marshal()), ccsRecord, hs(gnutls.marshal())),
		concat(hs(testServerHello(VersionTLS13, nil, true)), ccsRecord, hs(testServerHello(VersionTLS13, nil, false))), uint8(100))
	f.Add(hs(tls12SessionID.marshal()), concat(hs(testServerHello(VersionTLS12, sid, false), newTicket), ccsRecord), uint8(3))
	f.Fuzz(func(t *testing.T, client, server []byte, chunk uint8) {
		n := int(chunk) + 1
		emitted := 0
		conv := &Conversation{History: NewSessionHistory(4), Emit: func(*Record) { emitted++ }}
		for len(client) > 0 || len(server) > 0 {
			k := min(n, len(client))
			conv.Client(client[:k], time.Time{}, 0)
			client = client[k:]
			k = min(n, len(server))
			conv.Server(server[:k], time.Time{}, 0)
			server = server[k:]
		}
		open := len(conv.open)
		conv.Close()
		if len(conv.open) != 0 || emitted < open {
			t.Fatalf("Close left %d open, emitted %d", len(conv.open), emitted)
		}
	})
}

// quicDatagrams frames datagrams for FuzzQUICDatagrams: a direction byte,
// a two-byte length and the bytes, repeated.
func quicDatagrams(frames ...udpFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, byte(f.dir), byte(len(f.data)>>8), byte(len(f.data)))
		b = append(b, f.data...)
	}
	return b
}

// FuzzQUICDatagrams feeds a sequence of UDP datagrams of one 4-tuple to the
// capture reader's QUIC path: long headers, versions, Retry, Version
// Negotiation, coalesced packets. Seeds are whole synthetic connections.
func FuzzQUICDatagrams(f *testing.F) {
	for _, version := range []uint32{QUICv1, QUICv2} {
		qv := quicVersions[version]
		c := newQUICTestConn(version, "dcid0001", "scid01", "server")
		hello := quicHello(true)
		p1 := c.initial(0, cryptoFrameBytes(600, hello[600:]), 1200, nil)
		p2 := c.initial(0, cryptoFrameBytes(0, hello[:600]), 1200, nil)
		sh := c.initial(1, cryptoFrameBytes(0, quicServerHello(true)), 0, nil)
		f.Add(quicDatagrams(udpFrame{dir: 0, data: p1}, udpFrame{dir: 0, data: append(p2, c.opaque(0, qv.zeroRTT, 40)...)},
			udpFrame{dir: 1, data: append(sh, c.opaque(1, qv.handshake, 40)...)}, udpFrame{dir: 0, data: []byte{0x41, 0}}))
	}
	vn := longHeader(0, 0, []byte("a"), []byte("b"))
	f.Add(quicDatagrams(udpFrame{dir: 0, data: append(longHeader(0x1a2a3a4a, 0, []byte("b"), []byte("a")), make([]byte, 1200)...)}, udpFrame{dir: 1, data: vn}))
	f.Fuzz(func(t *testing.T, in []byte) {
		emitted := 0
		cr := captureReader{conns: map[connKey]*captureConn{}, quic: map[connKey]*captureFlow{}, history: NewSessionHistory(4),
			fn: func(r *Record) error {
				emitted++
				if r.Transport != TransportNameQUIC || r.QUIC == nil {
					t.Fatalf("record of a QUIC connection without its facts: %+v", r)
				}
				return nil
			}}
		cli, srv := netip.MustParseAddrPort("10.0.0.1:5000"), netip.MustParseAddrPort("10.0.0.2:443")
		for frame := 1; len(in) >= 3; frame++ {
			n := min(int(in[1])<<8|int(in[2]), len(in)-3)
			d := pcap.Datagram{Src: cli, Dst: srv, Data: in[3 : 3+n], Frame: frame}
			if in[0]&1 == 1 {
				d.Src, d.Dst = srv, cli
			}
			before := bytes.Clone(d.Data)
			if err := cr.datagram(d); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, d.Data) {
				t.Fatal("reading a datagram changed its bytes")
			}
			in = in[3+n:]
		}
		if err := cr.closeAll(); err != nil {
			t.Fatal(err)
		}
		if emitted > cr.quicConns*4 {
			t.Fatalf("%d records from %d connections", emitted, cr.quicConns)
		}
	})
}

// FuzzQUICFrames walks the frames of a decrypted Initial payload and
// reassembles its CRYPTO frames into a conversation.
func FuzzQUICFrames(f *testing.F) {
	hello := quicHello(true)
	f.Add(append(append(cryptoFrameBytes(500, hello[500:]), frameQUICPing, frameQUICPadding), cryptoFrameBytes(0, hello[:500])...))
	f.Add([]byte{frameQUICAckECN, 5, 0, 1, 0, 1, 1, 0, 0, 0, frameQUICClose, 0, 0, 2, 'h', 'i'})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var s cryptoStream
		delivered := 0
		conv := &Conversation{Transport: TransportQUIC, History: NewSessionHistory(4), Emit: func(*Record) {}}
		c := &quicConn{conv: conv}
		_ = quicFrames(payload, func(fr cryptoFrame) {
			_ = s.add(fr, func(b []byte) {
				delivered += len(b)
				c.deliver(0, b, quicStamp{})
			})
		})
		if uint64(delivered) != s.next {
			t.Fatalf("delivered %d bytes, stream at %d", delivered, s.next)
		}
		conv.Close()
	})
}

// FuzzCryptoReassembly cuts data into overlapping CRYPTO frames at the given
// points and hands them over in a shuffled order: what comes out must be
// a prefix of data, and all of it once every frame was given.
func FuzzCryptoReassembly(f *testing.F) {
	f.Add([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), []byte{10, 3, 20, 7, 5, 1})
	f.Add(bytes.Repeat([]byte{0xab}, 3000), []byte{200, 100, 255, 0, 9, 9, 9})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		if len(data) > maxCryptoStream {
			data = data[:maxCryptoStream]
		}
		var frames []cryptoFrame
		for off, i := 0, 0; off < len(data); i++ {
			n, back := len(data)-off, 0
			if i < len(cuts) {
				n = min(n, 1+int(cuts[i])*8)
				back = min(off, int(cuts[i])%5)
			}
			frames = append(frames, cryptoFrame{uint64(off - back), data[off-back : off+n]})
			off += n
		}
		for i := range frames { // a shuffle decided by the cuts
			if i < len(cuts) {
				j := int(cuts[i]) % len(frames)
				frames[i], frames[j] = frames[j], frames[i]
			}
		}
		var s cryptoStream
		var got []byte
		for _, fr := range frames {
			if err := s.add(fr, func(b []byte) { got = append(got, b...) }); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(data, got) {
				t.Fatalf("handed on %q, not a prefix of the stream", got)
			}
		}
		if !bytes.Equal(got, data) || s.gap() {
			t.Fatalf("after every frame: %d of %d bytes, gap %v", len(got), len(data), s.gap())
		}
	})
}
