package nettun

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	src4, dst4 = tcpip.AddrFrom4([4]byte{10, 9, 0, 2}), tcpip.AddrFrom4([4]byte{93, 184, 216, 34})
	src6, dst6 = tcpip.AddrFrom16([16]byte{0xfd, 9, 15: 2}), tcpip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: 1})
)

// packet builds an IPv4 or IPv6 packet (by the addresses) carrying a TCP
// segment or UDP datagram with payload, its checksums right.
func packet(proto tcpip.TransportProtocolNumber, src, dst tcpip.Address, payload []byte) []byte {
	var l4 []byte
	switch proto {
	case header.TCPProtocolNumber:
		l4 = make([]byte, header.TCPMinimumSize+len(payload))
		header.TCP(l4).Encode(&header.TCPFields{SrcPort: 50000, DstPort: 443, SeqNum: 1, AckNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck, WindowSize: 1000})
	case header.UDPProtocolNumber:
		l4 = make([]byte, header.UDPMinimumSize+len(payload))
		header.UDP(l4).Encode(&header.UDPFields{SrcPort: 50000, DstPort: 443, Length: uint16(len(l4))})
	default:
		l4 = make([]byte, len(payload))
	}
	copy(l4[len(l4)-len(payload):], payload)
	if proto == header.TCPProtocolNumber || proto == header.UDPProtocolNumber {
		sum := checksum.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
		off := header.TCPChecksumOffset
		if proto == header.UDPProtocolNumber {
			off = udpChecksumOffset
		}
		l4[off], l4[off+1] = byte(^sum>>8), byte(^sum)
	}
	if src.Len() == 4 {
		ip := make([]byte, header.IPv4MinimumSize, header.IPv4MinimumSize+len(l4))
		header.IPv4(ip).Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + len(l4)), TTL: 64, Protocol: uint8(proto), SrcAddr: src, DstAddr: dst})
		header.IPv4(ip).SetChecksum(^header.IPv4(ip).CalculateChecksum())
		return append(ip, l4...)
	}
	ip := make([]byte, header.IPv6MinimumSize, header.IPv6MinimumSize+len(l4))
	header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(len(l4)), TransportProtocol: proto, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	return append(ip, l4...)
}

// flip returns a copy of b with byte i changed.
func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}

// TestChecksumsValid: what Write drops for a checksum (the netstack checks
// none itself, Link says so) and what it leaves to the netstack.
func TestChecksumsValid(t *testing.T) {
	data := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	tcp4 := packet(header.TCPProtocolNumber, src4, dst4, data)
	udp4 := packet(header.UDPProtocolNumber, src4, dst4, data)
	tcp6 := packet(header.TCPProtocolNumber, src6, dst6, data)
	udp6 := packet(header.UDPProtocolNumber, src6, dst6, data)
	noSum4 := append([]byte(nil), udp4...)
	noSum4[header.IPv4MinimumSize+udpChecksumOffset], noSum4[header.IPv4MinimumSize+udpChecksumOffset+1] = 0, 0
	noSum6 := append([]byte(nil), udp6...)
	noSum6[header.IPv6MinimumSize+udpChecksumOffset], noSum6[header.IPv6MinimumSize+udpChecksumOffset+1] = 0, 0
	frag := flip(tcp4, len(tcp4)-1)
	header.IPv4(frag).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	header.IPv4(frag).SetChecksum(0)
	header.IPv4(frag).SetChecksum(^header.IPv4(frag).CalculateChecksum())
	last := len(tcp4) - 1
	icmp := packet(header.ICMPv4ProtocolNumber, src4, dst4, data)
	for _, tt := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"tcp4", tcp4, true},
		{"tcp4 payload changed", flip(tcp4, last), false},
		{"tcp4 header changed", flip(tcp4, header.IPv4MinimumSize+4), false},
		{"ipv4 header checksum wrong", flip(tcp4, 8), false}, // the TTL
		{"udp4", udp4, true},
		{"udp4 payload changed", flip(udp4, len(udp4)-1), false},
		{"udp4 without checksum", noSum4, true},
		{"tcp6", tcp6, true},
		{"tcp6 payload changed", flip(tcp6, len(tcp6)-1), false},
		{"tcp6 address changed", flip(tcp6, 8), false},
		{"udp6", udp6, true},
		{"udp6 without checksum (not allowed)", noSum6, false},
		{"fragment: the netstack checks the whole", frag, true},
		{"icmp: the netstack checks it", flip(icmp, len(icmp)-1), true},
		{"too short for its length: the netstack drops it", tcp4[:len(tcp4)-3], true},
		{"not IP", []byte{0x10, 0, 0}, true},
		{"tcp4 header cut", tcp4[:header.IPv4MinimumSize+10], true},
	} {
		if got := checksumsValid(tt.pkt); got != tt.want {
			t.Errorf("%s: checksumsValid = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzChecksumsValid: any bytes are judged without a panic.
func FuzzChecksumsValid(f *testing.F) {
	data := []byte("hello")
	f.Add(packet(header.TCPProtocolNumber, src4, dst4, data))
	f.Add(packet(header.UDPProtocolNumber, src6, dst6, data))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) == 0 {
			return // Write skips empty packets before asking
		}
		checksumsValid(pkt)
	})
}

// udpChecksumOffset is where a UDP header keeps its checksum (RFC 768).
const udpChecksumOffset = 6
