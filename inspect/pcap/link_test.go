package pcap

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestLinkTypes(t *testing.T) {
	tests := []struct {
		name string
		link layers.LinkType
		v6   bool
	}{
		{"Ethernet", layers.LinkTypeEthernet, false},
		{"Ethernet IPv6", layers.LinkTypeEthernet, true},
		{"802.1Q VLAN", linkTypeVLAN, false},
		{"BSD loopback", layers.LinkTypeNull, false},
		{"BSD loopback IPv6", layers.LinkTypeNull, true},
		{"Linux SLL", layers.LinkTypeLinuxSLL, false},
		{"Linux SLL IPv6", layers.LinkTypeLinuxSLL, true},
		{"Linux SLL2", layers.LinkTypeLinuxSLL2, false},
		{"raw IPv4", layers.LinkTypeRaw, false},
		{"raw IPv6", layers.LinkTypeRaw, true},
		{"LINKTYPE_IPV4", layers.LinkTypeIPv4, false},
		{"LINKTYPE_IPV6", layers.LinkTypeIPv6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConv(cli4, srv4)
			if tt.v6 {
				c = newConv(cli6, srv6)
			}
			ps := cat(c.handshake(), []pkt{c.client(4, "EFGH"), c.client(0, "ABCD"), c.server(0, "ok")})
			for _, ng := range []bool{false, true} {
				path := writeCapture(t, ng, tt.link, framesOf(t, tt.link, ps)...)
				streams, st := collect(t, path, Options{})
				if got := string(get(streams, c.cli.String()+">"+c.srv.String()).data); got != "ABCDEFGH" {
					t.Errorf("pcapng %v: client stream %q, want %q (stats %+v)", ng, got, "ABCDEFGH", st)
				}
				if got := string(get(streams, c.srv.String()+">"+c.cli.String()).data); got != "ok" {
					t.Errorf("pcapng %v: server stream %q, want %q", ng, got, "ok")
				}
			}
		})
	}
}

// TestSkippedAndMalformed checks the frames that carry no TCP payload to
// deliver, and that the frames around them are still reassembled.
func TestSkippedAndMalformed(t *testing.T) {
	c := newConv(cli4, srv4)
	eth := layers.LinkTypeEthernet
	ip := func(frag uint16, flags layers.IPv4Flag) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: flags, FragOffset: frag,
			SrcIP: cli4.Addr().AsSlice(), DstIP: srv4.Addr().AsSlice()}
	}
	fragIP := ip(0, layers.IPv4MoreFragments)
	tcpHead := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: c.cisn + 1 + 4, ACK: true, Window: 100}
	_ = tcpHead.SetNetworkLayerForChecksum(fragIP)
	udp := &layers.UDP{SrcPort: 53, DstPort: 53}
	udpIP := ip(0, 0)
	udpIP.Protocol = layers.IPProtocolUDP
	_ = udp.SetNetworkLayerForChecksum(udpIP)
	good := frame(t, eth, c.client(0, "ABCD"))
	long := frame(t, eth, c.client(0, strings.Repeat("x", 100))) // beyond Ethernet's padding to 60 bytes
	frames := [][]byte{
		good,
		serialize(t, eth, layers.EthernetTypeIPv4, 0, udpIP, udp, gopacket.Payload("dns")), // UDP: counted, not TCP
		serialize(t, eth, layers.EthernetTypeARP, 0, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, SourceHwAddress: make([]byte, 6), SourceProtAddress: make([]byte, 4),
			DstHwAddress: make([]byte, 6), DstProtAddress: make([]byte, 4)}), // ARP: skipped
		serialize(t, eth, layers.EthernetTypeIPv4, 0, fragIP, tcpHead, gopacket.Payload("EF")),            // first fragment: its bytes count
		serialize(t, eth, layers.EthernetTypeIPv4, 0, ip(3, 0), gopacket.Payload("GHIJKLMNOPQRSTUVWXYZ")), // later fragment: skipped
		long[:len(long)-2], // cut by the snap length: malformed
		good[:14+20+10],    // half a TCP header: malformed
		good[:10],          // half an Ethernet header: malformed
		frame(t, eth, c.client(6, "GH")),
	}
	path := writeCapture(t, false, eth, frames...)
	streams, st := collect(t, path, Options{})
	want := Stats{Packets: 9, TCPPackets: 3, UDPPackets: 1, Skipped: 2, Malformed: 3}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	up := get(streams, cli4.String()+">"+srv4.String())
	if string(up.data) != "ABCDEFGH" || len(up.gaps) != 0 {
		t.Errorf("client stream %q with gaps %v, want %q", up.data, up.gaps, "ABCDEFGH")
	}
}

// TestMixedLinkTypes checks a pcapng file whose interfaces differ in link
// type: every frame is decoded and numbered.
func TestMixedLinkTypes(t *testing.T) {
	c := newConv(cli4, srv4)
	var out bytes.Buffer
	w, err := pcapgo.NewNgWriter(&out, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	sll, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeLinuxSLL})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range cat(c.handshake(), []pkt{c.client(0, "ABCD"), c.client(4, "EFGH")}) {
		link, iface := layers.LinkTypeEthernet, 0
		if i%2 == 1 {
			link, iface = layers.LinkTypeLinuxSLL, sll
		}
		data := frame(t, link, p)
		ci := gopacket.CaptureInfo{Timestamp: t0, CaptureLength: len(data), Length: len(data), InterfaceIndex: iface}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	var frames []int
	st, err := Read(&out, Options{}, func(s Segment) error {
		got, frames = append(got, s.Data...), append(frames, s.Frame)
		return nil
	})
	if err != nil || st.TCPPackets != 5 || string(got) != "ABCDEFGH" || frames[1] != 5 {
		t.Errorf("got %q from frames %v, stats %+v, err %v", got, frames, st, err)
	}
}

func TestFormatErrors(t *testing.T) {
	c := newConv(cli4, srv4)
	good, err := os.ReadFile(writeCapture(t, false, layers.LinkTypeEthernet, framesOf(t, layers.LinkTypeEthernet, cat(c.handshake(), []pkt{c.client(0, "ABCD")}))...))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		input   []byte
		format  bool   // the error wraps ErrFormat
		wantErr string // "" means no error
	}{
		{"empty", nil, true, "only 0 bytes"},
		{"text", []byte("GET / HTTP/1.1\r\n"), true, "magic number 0x47455420"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0}, true, "magic number"},
		{"short pcap header", good[:12], false, "pcap: reading pcap file header"},
		{"short pcapng header", []byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0}, false, "pcap: reading pcapng section header"},
		{"truncated last record", good[:len(good)-3], false, ""},
		{"corrupt record length", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f), false, "pcap: reading frame 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.input), Options{}, func(Segment) error { return nil })
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tt.wantErr)
			case errors.Is(err, ErrFormat) != tt.format:
				t.Errorf("errors.Is(%v, ErrFormat) = %v", err, !tt.format)
			}
		})
	}
}

func TestCallbackError(t *testing.T) {
	c := newConv(cli4, srv4)
	path := writeCapture(t, false, layers.LinkTypeEthernet, framesOf(t, layers.LinkTypeEthernet,
		cat(c.handshake(), []pkt{c.client(0, "AB"), c.client(2, "CD")}))...)
	stop := errors.New("enough")
	calls := 0
	st, err := readFile(t, path, func(Segment) error { calls++; return stop })
	if err != stop || calls != 1 || st.Packets != 4 {
		t.Errorf("err %v after %d calls and %d packets, want %v after 1 call and 4 packets", err, calls, st.Packets, stop)
	}
}
