package nettun

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// cutter cuts a large TCP segment the netstack sent (stack.GSO: up to
// GSOMaxSize bytes, its TCP checksum left to the link) into packets of at
// most MSS payload bytes, each with its own IP and TCP headers and
// checksums, as a network card's TCP segmentation offload does (and as
// Linux's software GSO does, net/ipv4/tcp_offload.c): the sequence number
// advances, FIN and PSH stay on the last packet and CWR on the first only,
// and IPv4 IDs count up from the first's.
//
// Cutting here, into WireGuard's buffers, spares the netstack a packet
// buffer, an IP header and a queue entry per packet. It may take several
// Reads when WireGuard's batch has fewer buffers than the segment has
// packets; one goroutine reads, so the cutter needs no lock.
type cutter struct {
	store []byte // the segment, flattened, reused across segments
	seg   []byte // store[:the segment's length]; nil when none is pending
	l3    int    // the IP header's length, extension headers included
	hdr   int    // both headers' length
	mss   int    // payload bytes per packet
	v6    bool
	off   int // payload bytes already cut
}

// pending reports whether part of a segment is still to be cut.
func (c *cutter) pending() bool { return c.seg != nil }

// load takes pkt, a segment the netstack sent with GSO options, and
// releases it.
func (c *cutter) load(pkt *stack.PacketBuffer) {
	defer pkt.DecRef()
	size := pkt.Size()
	if cap(c.store) < size {
		c.store = make([]byte, size)
	}
	c.seg = c.store[:size]
	n := 0
	for _, s := range pkt.AsSlices() {
		n += copy(c.seg[n:], s)
	}
	gso := pkt.GSOOptions
	c.l3, c.v6, c.off = int(gso.L3HdrLen), gso.Type == stack.GSOTCPv6, 0
	c.hdr, c.mss = 0, int(gso.MSS)
	if c.l3+header.TCPMinimumSize <= size {
		c.hdr = c.l3 + int(header.TCP(c.seg[c.l3:]).DataOffset())
	}
	if !c.headersAdd(size) {
		c.l3, c.hdr, c.mss = 0, size, 0 // not the TCP/IP the options say: handed on whole
	}
}

// headersAdd reports whether the loaded segment's headers are what its GSO
// options say: an IP header of the version and length given, then a TCP
// header, within the segment's size.
func (c *cutter) headersAdd(size int) bool {
	if c.hdr < c.l3+header.TCPMinimumSize || c.hdr > size {
		return false
	}
	if c.v6 {
		return c.l3 >= header.IPv6MinimumSize && c.seg[0]>>4 == 6
	}
	return c.l3 >= header.IPv4MinimumSize && c.seg[0]>>4 == 4 && int(header.IPv4(c.seg).HeaderLength()) == c.l3
}

// cut writes the next packets into bufs (at offset), as many as there are
// buffers or packets left, and returns how many it wrote.
func (c *cutter) cut(bufs [][]byte, sizes []int, offset int) int {
	payload := len(c.seg) - c.hdr
	mss := c.mss
	if mss <= 0 || c.l3 == 0 {
		mss = payload // nothing to cut by: one packet, as the netstack made it
	}
	n := 0
	for n < len(bufs) {
		end := min(c.off+mss, payload)
		sizes[n] = c.packet(bufs[n][offset:], c.off, end)
		n++
		c.off = end
		if c.off >= payload {
			c.seg = nil
			break
		}
	}
	return n
}

// packet writes the packet carrying payload bytes [from, to) into b and
// returns its length.
func (c *cutter) packet(b []byte, from, to int) int {
	h := copy(b, c.seg[:c.hdr])
	size := h + copy(b[h:], c.seg[c.hdr+from:c.hdr+to])
	if c.l3 == 0 {
		return size
	}
	p := b[:size]
	tcp := header.TCP(p[c.l3:])
	first := header.TCP(c.seg[c.l3:])
	tcp.SetSequenceNumber(first.SequenceNumber() + uint32(from))
	flags := first.Flags()
	if to < len(c.seg)-c.hdr {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh
	}
	if from > 0 {
		flags &^= header.TCPFlagCwr
	}
	tcp.SetFlags(uint8(flags))
	var src, dst tcpip.Address
	if c.v6 {
		ip := header.IPv6(p)
		ip.SetPayloadLength(uint16(size - header.IPv6MinimumSize))
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv4(p)
		ip.SetTotalLength(uint16(size))
		if c.mss > 0 {
			ip.SetID(header.IPv4(c.seg).ID() + uint16(from/c.mss))
		}
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	}
	tcp.SetChecksum(0)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(size-c.l3))
	tcp.SetChecksum(^checksum.Checksum(p[c.l3:], sum))
	return size
}
