// Package pcap reads packet captures, pcap and pcapng, without cgo, and
// delivers the payload of every TCP connection, per direction, in order,
// and, when asked, the payload of every UDP datagram.
//
// It owns three things: recognising the capture format, decoding the link,
// network and TCP headers of each frame, and reassembling each direction of
// each TCP connection: retransmitted bytes are delivered once, out-of-order
// segments are held back until the hole before them fills, and holes that
// never fill are reported with Segment.Gap. It keeps only the beginning of
// each stream (Options.MaxBytes), which is all a reader of TLS hellos and a
// server's first flight needs, so memory stays bounded whatever the capture.
//
// The package is pure: it does no logging and opens no files or sockets.
package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Segment is the next in-order piece of one direction of a TCP connection.
type Segment struct {
	Time     time.Time      // capture timestamp of the packet that completed this data
	Src, Dst netip.AddrPort // sender and receiver of these bytes
	// SYN reports that Src sent a SYN without ACK on this connection, i.e.
	// Src is the client. Once known, it is set on every Segment of that
	// direction.
	SYN bool
	// Data is the next in-order payload in this direction. It is only valid
	// during the callback: copy it to keep it.
	Data []byte
	// Gap reports that bytes were missing before Data: they were never
	// captured, so Data does not follow the bytes delivered before it.
	Gap bool
	// Closed reports that the direction ended (FIN or RST). Data may be empty.
	Closed bool
	// Frame is the 1-based number of the frame (as Wireshark numbers frames)
	// whose arrival delivered Data: the packet that carried it, or the one
	// that filled the hole before it.
	Frame int
}

// Datagram is the payload of one UDP datagram.
type Datagram struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	// Data is only valid during the callback: copy it to keep it.
	Data  []byte
	Frame int // 1-based, as Wireshark numbers frames
}

// Options tunes Read. The zero value works.
type Options struct {
	// MaxBytes is how many bytes of each direction of each connection are
	// delivered; later bytes are dropped. Holes count as bytes. Zero or a
	// negative value means 256 KiB; values above 1 GiB mean 1 GiB.
	MaxBytes int
	// UDP, when set, is called with each UDP datagram in capture order,
	// interleaved with the TCP segments. An error stops reading and is
	// returned as is. Fragmented datagrams are skipped.
	UDP func(Datagram) error
}

// Stats counts the frames of a capture. Every frame read is counted in
// Packets and in exactly one of TCPPackets, UDPPackets, Skipped and Malformed.
type Stats struct {
	Packets    int // frames read
	TCPPackets int // frames holding a TCP segment
	UDPPackets int // frames holding a whole UDP datagram
	Skipped    int // frames of another link type or protocol, or IP fragments after the first
	Malformed  int // frames truncated or not decodable, plus a record cut short at the end of the capture
	// Truncated: the capture ends inside a frame (a capture that was still
	// being written, or copied short). Everything before it was read.
	Truncated bool
}

// ErrFormat is returned, wrapped, for input that is neither pcap nor pcapng.
var ErrFormat = errors.New("pcap: not a pcap or pcapng capture")

const (
	defaultMaxBytes = 256 << 10
	// maxMaxBytes keeps every offset within a stream well inside the 2^31
	// window in which TCP sequence numbers compare (RFC 1982 serial numbers).
	maxMaxBytes = 1 << 30
)

// maxBytes applies the documented defaults of Options.MaxBytes.
func (o Options) maxBytes() int64 {
	switch {
	case o.MaxBytes <= 0:
		return defaultMaxBytes
	case o.MaxBytes > maxMaxBytes:
		return maxMaxBytes
	}
	return int64(o.MaxBytes)
}

// Read reads a whole capture and calls fn for each in-order piece of TCP
// payload, in capture order; fn may be nil to only count frames. Bytes
// still held back when the capture ends (after a hole that never filled)
// are delivered last, with Gap set.
//
// It returns an error wrapping ErrFormat for input that is neither pcap nor
// pcapng, and an error for a capture that cannot be read on (a corrupt record
// header, an I/O error); a capture cut short inside its last record is not an
// error, the partial record is counted in Stats.Malformed. An error from fn
// stops reading and is returned as is.
func Read(r io.Reader, opts Options, fn func(Segment) error) (Stats, error) {
	var st Stats
	src, err := open(r)
	if err != nil {
		return st, err
	}
	asm := newAssembler(opts.maxBytes(), fn)
	var dec decoder
	var pkt packet
	for {
		data, ci, err := src.read()
		if err == io.EOF {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			st.Malformed++
			st.Truncated = true
			break
		}
		if err != nil {
			return st, fmt.Errorf("pcap: reading frame %d: %w", st.Packets+1, err)
		}
		st.Packets++
		switch dec.decode(src.linkType(ci), data, &pkt) {
		case verdictTCP:
			st.TCPPackets++
			if err := asm.segment(&pkt, origin{frame: st.Packets, ts: ci.Timestamp}); err != nil {
				return st, err
			}
		case verdictUDP:
			st.UDPPackets++
			if opts.UDP != nil {
				d := Datagram{Time: ci.Timestamp, Src: pkt.src, Dst: pkt.dst, Data: pkt.payload, Frame: st.Packets}
				if err := opts.UDP(d); err != nil {
					return st, err
				}
			}
		case verdictSkip:
			st.Skipped++
		default:
			st.Malformed++
		}
	}
	return st, asm.finish()
}

// source is the part of pcapgo's two readers that Read uses.
type source struct {
	r interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	link   layers.LinkType // of every frame of a pcap file
	mixed  bool            // pcapng: the link type comes with each frame
	frames int
}

// copiedFrames is how many frames are read into buffers of their own before
// switching to pcapgo's zero-copy reads, whose reused buffer is as large as
// the snap length (up to 256 KiB): a small capture does not pay for it.
const copiedFrames = 64

// read returns the next frame, valid until the next call.
func (s *source) read() ([]byte, gopacket.CaptureInfo, error) {
	if s.frames < copiedFrames {
		s.frames++
		return s.r.ReadPacketData()
	}
	return s.r.ZeroCopyReadPacketData()
}

func (s *source) linkType(ci gopacket.CaptureInfo) layers.LinkType {
	if s.mixed && len(ci.AncillaryData) > 0 {
		if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
			return lt
		}
	}
	return s.link
}

// Magic numbers, as they read big-endian from the first four bytes of a file.
const (
	magicPcapng  = 0x0a0d0d0a // pcapng section header block type, a palindrome
	magicMicroBE = 0xa1b2c3d4 // pcap, microsecond timestamps
	magicMicroLE = 0xd4c3b2a1
	magicNanoBE  = 0xa1b23c4d // pcap, nanosecond timestamps
	magicNanoLE  = 0x4d3cb2a1
)

// open picks the reader by magic number, not by file name: the corpus has a
// pcap file named ipv6.pcapng.
func open(r io.Reader) (*source, error) {
	var head [4]byte
	if n, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: only %d bytes", ErrFormat, n)
		}
		return nil, fmt.Errorf("pcap: reading magic number: %w", err)
	}
	whole := io.MultiReader(bytes.NewReader(head[:]), r)
	switch magic := binary.BigEndian.Uint32(head[:]); magic {
	case magicPcapng:
		// WantMixedLinkType keeps frames of every interface, so that frame
		// numbers match Wireshark's even when interfaces differ in link type.
		ng, err := pcapgo.NewNgReader(whole, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcap: reading pcapng section header: %w", err)
		}
		return &source{r: ng, mixed: true}, nil
	case magicMicroBE, magicMicroLE, magicNanoBE, magicNanoLE:
		pr, err := pcapgo.NewReader(whole)
		if err != nil {
			return nil, fmt.Errorf("pcap: reading pcap file header: %w", err)
		}
		return &source{r: pr, link: pr.LinkType()}, nil
	default:
		return nil, fmt.Errorf("%w: magic number %#08x", ErrFormat, magic)
	}
}
