package pcap

import (
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// packet is what the reassembler needs of one TCP segment, or the payload
// of one UDP datagram. payload points into the frame buffer and is only
// valid until the next frame is read.
type packet struct {
	src, dst           netip.AddrPort
	seq                uint32
	syn, ack, fin, rst bool
	payload            []byte
}

// verdict says what decode made of a frame.
type verdict int

const (
	verdictTCP verdict = iota
	verdictUDP
	verdictSkip
	verdictMalformed
)

// Link types that carry a bare IPv4 or IPv6 packet. 12 and 14 are DLT_RAW
// on different BSDs (libpcap pcap/dlt.h); the IP version nibble decides.
const (
	linkTypeRaw12 layers.LinkType = 12
	linkTypeRaw14 layers.LinkType = 14
)

// decoder decodes frames into reusable layers, without allocating per frame.
type decoder struct {
	eth   layers.Ethernet
	vlan  layers.Dot1Q
	sll   layers.LinuxSLL
	sll2  layers.LinuxSLL2
	loop  layers.Loopback
	ip4   layers.IPv4
	ip6   layers.IPv6
	ext   layers.IPv6ExtensionSkipper
	frag  layers.IPv6Fragment
	tcp   layers.TCP
	udp   layers.UDP
	types []gopacket.LayerType

	// parsers share the layers above; there is one per first layer type
	// because a DecodingLayerParser starts from a fixed layer.
	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
}

// firstLayer is the layer a frame of link type lt starts with, or
// LayerTypeZero for a link type this package does not decode.
func firstLayer(lt layers.LinkType, data []byte) gopacket.LayerType {
	switch lt {
	case layers.LinkTypeEthernet:
		return layers.LayerTypeEthernet
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return layers.LayerTypeLoopback
	case layers.LinkTypeLinuxSLL:
		return layers.LayerTypeLinuxSLL
	case layers.LinkTypeLinuxSLL2:
		return layers.LayerTypeLinuxSLL2
	case layers.LinkTypeRaw, linkTypeRaw12, linkTypeRaw14, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		if len(data) > 0 && data[0]>>4 == 6 {
			return layers.LayerTypeIPv6
		}
		return layers.LayerTypeIPv4 // and IPv4 decoding rejects a bad version
	}
	return gopacket.LayerTypeZero
}

func (d *decoder) parser(first gopacket.LayerType) *gopacket.DecodingLayerParser {
	if p, ok := d.parsers[first]; ok {
		return p
	}
	p := gopacket.NewDecodingLayerParser(first)
	p.SetDecodingLayerContainer(gopacket.DecodingLayerArray(nil))
	// The fragment layer comes after the extension skipper, whose class
	// includes fragment headers, so that it replaces the skipper for them.
	for _, l := range []gopacket.DecodingLayer{
		&d.eth, &d.vlan, &d.sll, &d.sll2, &d.loop,
		&d.ip4, &d.ip6, &d.ext, &d.frag, &d.tcp, &d.udp,
	} {
		p.AddDecodingLayer(l)
	}
	p.IgnoreUnsupported = true
	if d.parsers == nil {
		d.parsers = make(map[gopacket.LayerType]*gopacket.DecodingLayerParser)
	}
	d.parsers[first] = p
	return p
}

// decode fills p from a frame of link type lt.
func (d *decoder) decode(lt layers.LinkType, data []byte, p *packet) verdict {
	first := firstLayer(lt, data)
	if first == gopacket.LayerTypeZero {
		return verdictSkip
	}
	parser := d.parser(first)
	if err := parser.DecodeLayers(data, &d.types); err != nil || parser.Truncated {
		return verdictMalformed
	}
	var ip gopacket.LayerType // the innermost IP layer
	tcp, udp := false, false
	for _, t := range d.types {
		switch t {
		case layers.LayerTypeIPv4, layers.LayerTypeIPv6:
			ip = t
		case layers.LayerTypeTCP:
			tcp = true
		case layers.LayerTypeUDP:
			udp = true
		}
	}
	if ip == gopacket.LayerTypeZero {
		return verdictSkip
	}
	if !tcp && !udp {
		v := d.firstFragment()
		if v != verdictTCP {
			return v
		}
	}
	sport, dport := uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
	if udp {
		sport, dport = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
	}
	switch ip {
	case layers.LayerTypeIPv4:
		if len(d.ip4.SrcIP) != 4 || len(d.ip4.DstIP) != 4 {
			return verdictMalformed
		}
		p.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d.ip4.SrcIP)), sport)
		p.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(d.ip4.DstIP)), dport)
	default:
		if len(d.ip6.SrcIP) != 16 || len(d.ip6.DstIP) != 16 {
			return verdictMalformed
		}
		p.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.SrcIP)), sport)
		p.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(d.ip6.DstIP)), dport)
	}
	if udp {
		p.payload = d.udp.Payload
		return verdictUDP
	}
	p.seq = d.tcp.Seq
	p.syn, p.ack, p.fin, p.rst = d.tcp.SYN, d.tcp.ACK, d.tcp.FIN, d.tcp.RST
	p.payload = d.tcp.Payload
	return verdictTCP
}

// firstFragment decodes the TCP header at the start of the first fragment
// of a fragmented IP packet, which the parser stops at: its payload is the
// beginning of the segment, and the rest shows up as a hole. Later
// fragments hold no TCP header and are skipped.
func (d *decoder) firstFragment() verdict {
	var payload []byte
	switch d.types[len(d.types)-1] {
	case layers.LayerTypeIPv4:
		if d.ip4.FragOffset != 0 || d.ip4.Flags&layers.IPv4MoreFragments == 0 ||
			d.ip4.Protocol != layers.IPProtocolTCP {
			return verdictSkip
		}
		payload = d.ip4.Payload
	case layers.LayerTypeIPv6Fragment:
		if d.frag.FragmentOffset != 0 || d.frag.NextHeader != layers.IPProtocolTCP {
			return verdictSkip
		}
		payload = d.frag.Payload
	default:
		return verdictSkip
	}
	if err := d.tcp.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
		return verdictMalformed
	}
	return verdictTCP
}
