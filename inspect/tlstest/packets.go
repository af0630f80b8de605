package tlstest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// This file reads a Capture's own file with gopacket, not with
// inspect/pcap: tlstest checks what package inspect reads, so it does not
// lean on it, and inspect's own tests can import tlstest without a cycle.

// packet is what holdsEnd and gaps need of one captured frame.
type packet struct {
	src, dst netip.AddrPort
	udp      bool
	syn, fin bool // TCP flags
	rst      bool
	seq      uint32
	size     int // TCP payload bytes
}

// errStop ends eachPacket early without an error.
var errStop = errors.New("tlstest: stop reading")

// eachPacket calls fn for each IPv4 or IPv6 TCP or UDP frame of the capture
// at path, in capture order, until fn returns an error, which it returns
// (errStop as nil). The file may still be being written: tcpdump writes
// pcap, dumpcap pcapng, and a record cut short at the end, or a file too
// short for its header, ends the reading without error.
func eachPacket(path string, fn func(packet) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var src interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		LinkType() layers.LinkType
	}
	magic, err := br.Peek(4)
	if err != nil {
		return nil // nothing written yet
	}
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) { // pcapng section header block
		src, err = pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
	} else {
		src, err = pcapgo.NewReader(br)
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil // headers not all written yet
		}
		return err
	}
	for {
		data, _, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p, ok := decode(gopacket.NewPacket(data, src.LinkType(), gopacket.NoCopy))
		if !ok {
			continue
		}
		if err := fn(p); err != nil {
			if err == errStop {
				return nil
			}
			return err
		}
	}
}

// decode picks the addresses, ports and TCP facts out of a decoded frame.
func decode(pkt gopacket.Packet) (packet, bool) {
	var p packet
	var from, to netip.Addr
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		from, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		to, _ = netip.AddrFromSlice(ip.DstIP.To4())
	case *layers.IPv6:
		from, _ = netip.AddrFromSlice(ip.SrcIP)
		to, _ = netip.AddrFromSlice(ip.DstIP)
	default:
		return p, false
	}
	switch l := pkt.TransportLayer().(type) {
	case *layers.TCP:
		p.src, p.dst = netip.AddrPortFrom(from, uint16(l.SrcPort)), netip.AddrPortFrom(to, uint16(l.DstPort))
		p.syn, p.fin, p.rst = l.SYN, l.FIN, l.RST
		p.seq, p.size = l.Seq, len(l.Payload)
	case *layers.UDP:
		p.src, p.dst = netip.AddrPortFrom(from, uint16(l.SrcPort)), netip.AddrPortFrom(to, uint16(l.DstPort))
		p.udp = true
	default:
		return p, false
	}
	return p, true
}

// holesIn counts, over the TCP streams of a capture, the segments that
// start beyond the next sequence number their direction expects: bytes
// between were never captured. A direction's first segment (or its SYN)
// sets where it starts; retransmissions, which start before, are no hole.
func holesIn(path string) (int, error) {
	next := map[[2]netip.AddrPort]uint32{}
	holes := 0
	err := eachPacket(path, func(p packet) error {
		if p.udp {
			return nil
		}
		flow := [2]netip.AddrPort{p.src, p.dst}
		want, seen := next[flow]
		// Serial number arithmetic (RFC 1982): a hole is a start ahead of want.
		if seen && int32(p.seq-want) > 0 {
			holes++
		}
		end := p.seq + uint32(p.size)
		if p.syn || p.fin { // each takes one sequence number (RFC 9293, Section 3.4)
			end++
		}
		if !seen || int32(end-want) > 0 {
			next[flow] = end
		}
		return nil
	})
	return holes, err
}
