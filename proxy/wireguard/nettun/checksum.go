package nettun

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// checksumsValid checks what the netstack leaves to its link when the link
// offers receive checksum offload: an IPv4 header's checksum, and a TCP
// segment's or UDP datagram's. It returns true for what it cannot judge
// and the netstack judges itself: a packet too short or whose lengths
// disagree (the netstack drops it), ICMP (the netstack checks it), a
// fragment (its transport checksum covers the reassembled packet) and
// IPv6 with extension headers. WireGuard has already authenticated every
// byte, so a checksum that fails here is the device's own mistake.
func checksumsValid(pkt []byte) bool {
	var (
		proto    tcpip.TransportProtocolNumber
		src, dst tcpip.Address
		l4       []byte
	)
	switch {
	case pkt[0]>>4 == 4 && len(pkt) >= header.IPv4MinimumSize:
		h := header.IPv4(pkt)
		hl, total := int(h.HeaderLength()), int(h.TotalLength())
		if hl < header.IPv4MinimumSize || hl > total || total > len(pkt) {
			return true
		}
		if !h.IsChecksumValid() {
			return false
		}
		if h.More() || h.FragmentOffset() != 0 {
			return true
		}
		proto, src, dst, l4 = h.TransportProtocol(), h.SourceAddress(), h.DestinationAddress(), pkt[hl:total]
	case pkt[0]>>4 == 6 && len(pkt) >= header.IPv6MinimumSize:
		h := header.IPv6(pkt)
		end := header.IPv6MinimumSize + int(h.PayloadLength())
		if end > len(pkt) {
			return true
		}
		proto, src, dst, l4 = h.TransportProtocol(), h.SourceAddress(), h.DestinationAddress(), pkt[header.IPv6MinimumSize:end]
	default:
		return true
	}
	switch proto {
	case header.TCPProtocolNumber:
		if len(l4) < header.TCPMinimumSize {
			return true
		}
	case header.UDPProtocolNumber:
		if len(l4) < header.UDPMinimumSize {
			return true
		}
		if header.UDP(l4).Checksum() == 0 && src.Len() == 4 {
			return true // no checksum: allowed over IPv4 (RFC 768)
		}
	default:
		return true
	}
	sum := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	return checksum.Checksum(l4, sum) == 0xffff
}
