package tlstest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// seg is one TCP segment of a built capture, from the client (port 40000)
// or from the server (port 443).
type seg struct {
	fromServer    bool
	seq           uint32
	syn, fin, rst bool
	payload       string
}

// writeCapture writes segs as Ethernet/IPv4/TCP frames on loopback into a
// pcap file, or a pcapng file when ng is set (tcpdump writes one, dumpcap
// the other), and returns its path.
func writeCapture(t *testing.T, segs []seg, ng bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var write func(gopacket.CaptureInfo, []byte) error
	if ng {
		w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Flush()
		write = w.WritePacket
	} else {
		w := pcapgo.NewWriter(f)
		if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
		write = w.WritePacket
	}
	lo := net.IPv4(127, 0, 0, 1)
	for i, s := range segs {
		eth := &layers.Ethernet{SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6), EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: lo, DstIP: lo}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: s.seq, SYN: s.syn, FIN: s.fin, RST: s.rst, ACK: !s.syn, Window: 65535}
		if s.fromServer {
			tcp.SrcPort, tcp.DstPort = 443, 40000
		}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(s.payload)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(int64(i), 0), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := write(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestHolesIn(t *testing.T) {
	// Client ISN 100, server ISN 5000.
	hello := []seg{{seq: 100, syn: true}, {fromServer: true, seq: 5000, syn: true}, {seq: 101, payload: "hello"}}
	tests := []struct {
		name  string
		segs  []seg
		holes int
	}{
		{"whole conversation", append(hello[:3:3],
			seg{fromServer: true, seq: 5001, payload: "world"},
			seg{seq: 106, fin: true}, seg{fromServer: true, seq: 5006, fin: true},
			seg{seq: 107}), 0}, // the last ACK follows the FIN's sequence number
		{"retransmission", append(hello[:3:3], seg{seq: 101, payload: "hello"}, seg{seq: 106, payload: "!"}), 0},
		{"bytes lost", append(hello[:3:3], seg{seq: 110, payload: "late"}), 1},
		{"lost in both directions", append(hello[:3:3],
			seg{fromServer: true, seq: 5001, payload: "a"}, seg{fromServer: true, seq: 5003, payload: "c"},
			seg{seq: 107, rst: true}), 2},
		{"no SYN seen", []seg{{seq: 7000, payload: "mid"}, {seq: 7003, payload: "stream"}}, 0},
		{"sequence wraps", []seg{{seq: 0xfffffffd, payload: "abc"}, {seq: 0, payload: "def"},
			{seq: 0xfffffffd, payload: "abc"}, {seq: 4, payload: "x"}}, 1}, // a retransmission from before the wrap, then a hole
	}
	for _, tc := range tests {
		for format, ng := range map[string]bool{"pcap": false, "pcapng": true} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				got, err := holesIn(writeCapture(t, tc.segs, ng))
				if err != nil || got != tc.holes {
					t.Errorf("holesIn = %d, %v; want %d holes", got, err, tc.holes)
				}
			})
		}
	}
}

func TestHoldsEnd(t *testing.T) {
	path := writeCapture(t, []seg{{seq: 100, syn: true}, {seq: 101, payload: "x"}, {seq: 102, fin: true}}, false)
	for _, tc := range []struct {
		ports []int
		want  bool
	}{{[]int{40000}, true}, {[]int{443}, true}, {[]int{1, 2}, false}} {
		if got := (&Capture{Path: path}).holdsEnd(tc.ports); got != tc.want {
			t.Errorf("holdsEnd(%v) = %v, want %v", tc.ports, got, tc.want)
		}
	}
	open := writeCapture(t, []seg{{seq: 100, syn: true}, {seq: 101, payload: "x"}}, true)
	if (&Capture{Path: open}).holdsEnd([]int{40000}) {
		t.Errorf("holdsEnd found an end in a capture without FIN or RST")
	}
	// A file cut inside its last record, as tcpdump leaves it mid-write.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if (&Capture{Path: cut}).holdsEnd([]int{40000}) {
		t.Errorf("holdsEnd found the FIN of a record cut short")
	}
	if holes, err := holesIn(cut); err != nil || holes != 0 {
		t.Errorf("holesIn of a cut capture = %d, %v; want 0, nil", holes, err)
	}
}
