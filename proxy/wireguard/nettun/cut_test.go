package nettun

import (
	"bytes"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// gsoSegment is a segment as the netstack hands it to a link offering
// GSO: headers for the whole payload, the TCP checksum left undone.
func gsoSegment(src, dst tcpip.Address, flags header.TCPFlags, payload []byte, mss int) *stack.PacketBuffer {
	b := packet(header.TCPProtocolNumber, src, dst, payload)
	l3 := header.IPv4MinimumSize
	typ := stack.GSOTCPv4
	if src.Len() == 16 {
		l3, typ = header.IPv6MinimumSize, stack.GSOTCPv6
	} else {
		header.IPv4(b).SetID(100)
	}
	tcp := header.TCP(b[l3:])
	tcp.SetFlags(uint8(flags))
	tcp.SetSequenceNumber(1 << 31)
	tcp.SetChecksum(0x1234) // a partial sum: the link completes it
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.GSOOptions = stack.GSO{Type: typ, NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: uint16(mss), L3HdrLen: uint16(l3), MaxSize: 1 << 15}
	return pkt
}

// TestCut: a 10,000-byte segment becomes 8 packets of the MSS over
// Reads of 3 buffers, each 1,420 bytes at most, with valid checksums; the
// payloads join to the original, sequence numbers advance by the payload,
// FIN and PSH are on the last packet only and CWR on the first only, IPv4
// IDs count up; a segment without payload (a bare ACK) passes whole.
func TestCut(t *testing.T) {
	payload := make([]byte, 10000)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	for _, tt := range []struct {
		name     string
		src, dst tcpip.Address
		l3       int
	}{{"ipv4", src4, dst4, header.IPv4MinimumSize}, {"ipv6", src6, dst6, header.IPv6MinimumSize}} {
		t.Run(tt.name, func(t *testing.T) {
			mss := 1420 - tt.l3 - header.TCPMinimumSize // 1380 and 1360: 8 packets either way
			d := New(1420, nil)
			defer d.Close()
			time.AfterFunc(5*time.Second, func() { d.Close() }) // a Read waiting for more than there is ends
			var pkts stack.PacketBufferList
			pkts.PushBack(gsoSegment(tt.src, tt.dst, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr, payload, mss))
			pkts.PushBack(gsoSegment(tt.src, tt.dst, header.TCPFlagAck, nil, mss))
			if n, err := d.Link().WritePackets(pkts); err != nil || n != 2 {
				t.Fatalf("queued %d: %v", n, err)
			}
			pkts.DecRef()
			const offset = 16
			var got [][]byte
			for len(got) < 9 {
				bufs, sizes := make([][]byte, 3), make([]int, 3)
				for i := range bufs {
					bufs[i] = make([]byte, offset+1420)
				}
				n, err := d.Read(bufs, sizes, offset)
				if err != nil || n == 0 {
					t.Fatalf("Read = %d, %v after %d packets", n, err, len(got))
				}
				for i := range n {
					got = append(got, bufs[i][offset:offset+sizes[i]])
				}
			}
			if len(got) != 9 {
				t.Fatalf("%d packets, want 8 and the bare ACK", len(got))
			}
			var joined []byte
			for i, p := range got {
				if !checksumsValid(p) {
					t.Errorf("packet %d: a checksum is wrong", i)
				}
				tcp := header.TCP(p[tt.l3:])
				data := p[tt.l3+int(tcp.DataOffset()):]
				if i < 8 {
					if wantLen := min(mss, len(payload)-i*mss); len(data) != wantLen {
						t.Errorf("packet %d: %d payload bytes, want %d", i, len(data), wantLen)
					}
					if want := uint32(1<<31) + uint32(i*mss); tcp.SequenceNumber() != want {
						t.Errorf("packet %d: seq %d, want %d", i, tcp.SequenceNumber(), want)
					}
					joined = append(joined, data...)
				}
				f := tcp.Flags()
				first := i == 0
				if (f&header.TCPFlagFin != 0) != (i == 7) || (f&header.TCPFlagPsh != 0) != (i == 7) {
					t.Errorf("packet %d: flags %s: FIN and PSH belong to the last only", i, f)
				}
				if i < 8 && (f&header.TCPFlagCwr != 0) != first {
					t.Errorf("packet %d: flags %s: CWR belongs to the first only", i, f)
				}
				if f&header.TCPFlagAck == 0 {
					t.Errorf("packet %d: flags %s: ACK lost", i, f)
				}
				if tt.l3 == header.IPv4MinimumSize && i < 8 {
					if id := header.IPv4(p).ID(); id != uint16(100+i) {
						t.Errorf("packet %d: IPv4 ID %d, want %d", i, id, 100+i)
					}
				}
			}
			if !bytes.Equal(joined, payload) {
				t.Error("the payloads do not join to the segment's")
			}
		})
	}
}

// TestCutMalformed: a segment whose headers are not what its GSO options
// say is handed on whole, not cut or read out of bounds.
func TestCutMalformed(t *testing.T) {
	d := New(1420, nil)
	defer d.Close()
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData([]byte{0x45, 1, 2, 3})})
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, MSS: 2, L3HdrLen: 20}
	var pkts stack.PacketBufferList
	pkts.PushBack(pkt)
	d.Link().WritePackets(pkts)
	pkts.DecRef()
	bufs, sizes := [][]byte{make([]byte, 64)}, []int{0}
	if n, err := d.Read(bufs, sizes, 0); n != 1 || err != nil || sizes[0] != 4 {
		t.Fatalf("Read = %d, %v, size %d; want the 4 bytes whole", n, err, sizes[0])
	}
}

// FuzzCut: whatever bytes and GSO options the netstack handed over, Read
// returns packets without a panic, none longer than the segment, and their
// payloads add up to the segment's.
func FuzzCut(f *testing.F) {
	f.Add(packet(header.TCPProtocolNumber, src4, dst4, make([]byte, 3000)), uint16(1380), uint16(20), false)
	f.Add(packet(header.TCPProtocolNumber, src6, dst6, make([]byte, 3000)), uint16(1360), uint16(40), true)
	f.Add([]byte{0x45, 0, 0}, uint16(1), uint16(20), false)
	f.Fuzz(func(t *testing.T, seg []byte, mss, l3 uint16, v6 bool) {
		if len(seg) == 0 || len(seg) > 1<<15 {
			return
		}
		d := New(1420, nil)
		defer d.Close()
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(seg)})
		pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, MSS: mss, L3HdrLen: l3}
		if v6 {
			pkt.GSOOptions.Type = stack.GSOTCPv6
		}
		var pkts stack.PacketBufferList
		pkts.PushBack(pkt)
		d.Link().WritePackets(pkts)
		pkts.DecRef()
		bufs, sizes := make([][]byte, 64), make([]int, 64)
		for i := range bufs {
			bufs[i] = make([]byte, len(seg))
		}
		total := 0
		for {
			n, err := d.Read(bufs, sizes, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if sizes[i] > len(seg) {
					t.Fatalf("a packet of %d bytes from a segment of %d", sizes[i], len(seg))
				}
				total += sizes[i]
			}
			if !d.cutter.pending() {
				break
			}
		}
		if total < len(seg) {
			t.Fatalf("%d bytes out of a segment of %d", total, len(seg))
		}
	})
}
