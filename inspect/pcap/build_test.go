package pcap

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// This file builds real capture files for the tests: frames serialized
// with gopacket and written with pcapgo's writers.

// pkt is one TCP segment to put in a capture.
type pkt struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    string // any of "SAFRP"
	payload  []byte
}

// conv is a TCP conversation between a client and a server.
type conv struct {
	cli, srv   netip.AddrPort
	cisn, sisn uint32
}

var (
	cli4 = netip.MustParseAddrPort("10.0.0.1:40000")
	srv4 = netip.MustParseAddrPort("10.0.0.2:443")
	cli6 = netip.MustParseAddrPort("[2001:db8::1]:40000")
	srv6 = netip.MustParseAddrPort("[2001:db8::2]:443")
)

func newConv(cli, srv netip.AddrPort) conv {
	return conv{cli: cli, srv: srv, cisn: 1000, sisn: 5000}
}

func (c conv) handshake() []pkt {
	return []pkt{
		{src: c.cli, dst: c.srv, seq: c.cisn, flags: "S"},
		{src: c.srv, dst: c.cli, seq: c.sisn, ack: c.cisn + 1, flags: "SA"},
		{src: c.cli, dst: c.srv, seq: c.cisn + 1, ack: c.sisn + 1, flags: "A"},
	}
}

// client is a segment from the client holding the stream bytes at offset off.
func (c conv) client(off int, payload string) pkt {
	return pkt{src: c.cli, dst: c.srv, seq: c.cisn + 1 + uint32(off), ack: c.sisn + 1, flags: "PA", payload: []byte(payload)}
}

func (c conv) server(off int, payload string) pkt {
	return pkt{src: c.srv, dst: c.cli, seq: c.sisn + 1 + uint32(off), ack: c.cisn + 1, flags: "PA", payload: []byte(payload)}
}

// fin closes the client side (client true) or the server side after n bytes.
func (c conv) fin(client bool, n int) pkt {
	if client {
		return pkt{src: c.cli, dst: c.srv, seq: c.cisn + 1 + uint32(n), ack: c.sisn + 1, flags: "FA"}
	}
	return pkt{src: c.srv, dst: c.cli, seq: c.sisn + 1 + uint32(n), ack: c.cisn + 1, flags: "FA"}
}

// split cuts s into pieces of at most n bytes, sent by the client from off.
func (c conv) split(off int, s string, n int) []pkt {
	var ps []pkt
	for i := 0; i < len(s); i += n {
		ps = append(ps, c.client(off+i, s[i:min(i+n, len(s))]))
	}
	return ps
}

// frame serializes p for link type link.
func frame(t testing.TB, link layers.LinkType, p pkt) []byte {
	t.Helper()
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(p.src.Port()), DstPort: layers.TCPPort(p.dst.Port()),
		Seq: p.seq, Ack: p.ack, Window: 65535,
		SYN: strings.Contains(p.flags, "S"), ACK: strings.Contains(p.flags, "A"),
		FIN: strings.Contains(p.flags, "F"), RST: strings.Contains(p.flags, "R"),
		PSH: strings.Contains(p.flags, "P"),
	}
	var ip gopacket.SerializableLayer
	ethType, family := layers.EthernetTypeIPv4, layers.ProtocolFamilyIPv4
	if p.src.Addr().Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: p.src.Addr().AsSlice(), DstIP: p.dst.Addr().AsSlice()}
		tcp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
		ethType, family = layers.EthernetTypeIPv6, layers.ProtocolFamilyIPv6Linux
	}
	return serialize(t, link, ethType, family, ip, tcp, gopacket.Payload(p.payload))
}

// serialize puts the link header of link type link in front of the layers.
func serialize(t testing.TB, link layers.LinkType, ethType layers.EthernetType, family layers.ProtocolFamily, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var head []byte
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	switch link {
	case layers.LinkTypeEthernet:
		ls = append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: ethType}}, ls...)
	case linkTypeVLAN:
		ls = append([]gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: mac, DstMAC: mac, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 7, Type: ethType},
		}, ls...)
	case layers.LinkTypeNull:
		ls = append([]gopacket.SerializableLayer{&layers.Loopback{Family: family}}, ls...)
	case layers.LinkTypeLinuxSLL: // packet type, ARPHRD_ETHER, address length, address, protocol
		head = binary.BigEndian.AppendUint16(nil, 0)
		head = binary.BigEndian.AppendUint16(head, 1)
		head = binary.BigEndian.AppendUint16(head, 6)
		head = append(head, mac...)
		head = append(head, 0, 0)
		head = binary.BigEndian.AppendUint16(head, uint16(ethType))
	case layers.LinkTypeLinuxSLL2: // protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address
		head = binary.BigEndian.AppendUint16(nil, uint16(ethType))
		head = append(head, 0, 0, 0, 0, 0, 1)
		head = binary.BigEndian.AppendUint16(head, 1)
		head = append(head, 0, 6)
		head = append(head, mac...)
		head = append(head, 0, 0)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serializing frame: %v", err)
	}
	return append(head, buf.Bytes()...)
}

// linkTypeVLAN asks serialize for Ethernet with an 802.1Q tag; it is
// written to the file as Ethernet.
const linkTypeVLAN layers.LinkType = 0xfff0

func fileLinkType(link layers.LinkType) layers.LinkType {
	if link == linkTypeVLAN {
		return layers.LinkTypeEthernet
	}
	return link
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// writeCapture writes the frames to a pcap file (or pcapng when ng is set)
// in a temporary directory, one millisecond apart, and returns its path.
func writeCapture(t testing.TB, ng bool, link layers.LinkType, frames ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.pcap")
	if err := os.WriteFile(path, capture(t, ng, link, frames...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// capture returns the frames as a pcap file, or pcapng when ng is set.
func capture(t testing.TB, ng bool, link layers.LinkType, frames ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var write func(gopacket.CaptureInfo, []byte) error
	var flush func() error
	if ng {
		w, err := pcapgo.NewNgWriter(&out, fileLinkType(link))
		if err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, w.Flush
	} else {
		w := pcapgo.NewWriterNanos(&out)
		if err := w.WriteFileHeader(65536, fileLinkType(link)); err != nil {
			t.Fatal(err)
		}
		write, flush = w.WritePacket, func() error { return nil }
	}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f), Length: len(f)}
		if err := write(ci, f); err != nil {
			t.Fatalf("writing frame %d: %v", i+1, err)
		}
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func framesOf(t testing.TB, link layers.LinkType, ps []pkt) [][]byte {
	fs := make([][]byte, len(ps))
	for i, p := range ps {
		fs[i] = frame(t, link, p)
	}
	return fs
}

// stream is what a test saw of one direction.
type stream struct {
	data   []byte
	gaps   []int // offsets in data where a Segment had Gap set
	frames []int // Frame of each Segment with data
	ends   []int // offset in data after each Segment with data
	syn    bool
	closed int // Closed segments seen
}

// collect reads the capture at path and gathers the streams by "src>dst".
func collect(t testing.TB, path string, opts Options) (map[string]*stream, Stats) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	streams := make(map[string]*stream)
	st, err := Read(f, opts, func(s Segment) error {
		k := s.Src.String() + ">" + s.Dst.String()
		sm := streams[k]
		if sm == nil {
			sm = &stream{}
			streams[k] = sm
		}
		if sm.closed > 0 && (len(s.Data) > 0 || s.Closed) {
			t.Errorf("%s: segment after Closed: %+v", k, s)
		}
		if s.Gap {
			sm.gaps = append(sm.gaps, len(sm.data))
		}
		if len(s.Data) > 0 {
			sm.frames = append(sm.frames, s.Frame)
		}
		sm.data = append(sm.data, s.Data...)
		if len(s.Data) > 0 {
			sm.ends = append(sm.ends, len(sm.data))
		}
		sm.syn = sm.syn || s.SYN
		if s.Closed {
			sm.closed++
		}
		if s.Frame < 1 || s.Time.IsZero() {
			t.Errorf("%s: segment without frame or time: %+v", k, s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s): %v", filepath.Base(path), err)
	}
	return streams, st
}

// readFile reads the capture at path with default options.
func readFile(t testing.TB, path string, fn func(Segment) error) (Stats, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Read(f, Options{}, fn)
}
