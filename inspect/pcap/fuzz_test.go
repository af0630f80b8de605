package pcap

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// FuzzRead feeds arbitrary bytes to Read: it must never panic, and what it
// delivers must respect the documented bounds. The seeds are the small real
// captures of the corpus, read here rather than copied into the repository,
// and captures built to reach the reassembly paths.
func FuzzRead(f *testing.F) {
	for _, seed := range corpusSeeds(f) {
		f.Add(seed, uint32(0))
	}
	c := newConv(cli4, srv4)
	c6 := newConv(cli6, srv6)
	wrap := conv{cli: cli4, srv: srv4, cisn: 0xfffffffa, sisn: 1}
	crafted := []struct {
		link layers.LinkType
		pkts []pkt
	}{
		{layers.LinkTypeEthernet, cat(c.handshake(), reversed(c.split(0, hello[:60], 9)), []pkt{c.fin(true, 60), c.fin(false, 0)})},
		{layers.LinkTypeLinuxSLL, cat(c.handshake(), []pkt{c.client(0, "AAAA"), c.client(8, "CC"), c.client(2, "AABBBB"), c.server(0, "x")})},
		{layers.LinkTypeLinuxSLL2, cat(wrap.handshake(), reversed(wrap.split(0, "0123456789abcdef", 3)))},
		{layers.LinkTypeNull, cat(c6.handshake(), []pkt{c6.client(9, "late"), {src: c6.srv, dst: c6.cli, seq: c6.sisn + 1, flags: "R"}})},
		{linkTypeVLAN, []pkt{c.client(0, "no handshake"), c.server(0, "reply")}},
	}
	for _, cr := range crafted {
		for _, ng := range []bool{false, true} {
			data, err := os.ReadFile(writeCapture(f, ng, cr.link, framesOf(f, cr.link, cr.pkts)...))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, uint32(5))
		}
	}
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1}, uint32(0))
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a}, uint32(0))

	f.Fuzz(func(t *testing.T, data []byte, maxBytes uint32) {
		opts := Options{MaxBytes: int(maxBytes % (1 << 20))}
		limit := int(opts.maxBytes())
		frames := 0
		st, err := Read(bytes.NewReader(data), opts, func(s Segment) error {
			if len(s.Data) > limit {
				t.Fatalf("segment of %d bytes, MaxBytes is %d", len(s.Data), limit)
			}
			if s.Closed && len(s.Data) > 0 {
				t.Fatalf("Closed segment with %d bytes", len(s.Data))
			}
			if s.Frame < 1 {
				t.Fatalf("frame %d", s.Frame)
			}
			frames = max(frames, s.Frame)
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "pcap: ") {
			t.Fatalf("error without the package prefix: %v", err)
		}
		if frames > st.Packets {
			t.Fatalf("frame %d delivered, %d read", frames, st.Packets)
		}
		if st.Packets != st.TCPPackets+st.UDPPackets+st.Skipped+st.Malformed && st.Packets+1 != st.TCPPackets+st.UDPPackets+st.Skipped+st.Malformed {
			t.Fatalf("stats do not add up: %+v", st)
		}
	})
}

// FuzzReassembly sends a stream as segments cut, ordered and repeated as
// plan says, with the sequence numbers starting at isn, and then the whole
// stream once more: whatever came before, the bytes must come out exactly
// once, in order, without a gap.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte(hello[:100]), []byte{50, 10, 0, 60, 20, 30, 5, 200}, uint32(1000), false)
	f.Add([]byte("0123456789abcdef"), []byte{8, 8, 4, 4, 0, 12, 2, 2}, uint32(0xfffffff8), true)
	f.Add([]byte("x"), []byte{}, uint32(0), false)
	f.Fuzz(func(t *testing.T, stream, plan []byte, isn uint32, ng bool) {
		if len(stream) == 0 || len(stream) > 4096 || len(plan) > 256 {
			return
		}
		c := conv{cli: cli4, srv: srv4, cisn: isn, sisn: ^isn}
		ps := c.handshake()
		for i := 0; i+1 < len(plan); i += 2 { // each pair is an offset and a length
			off := int(plan[i]) * len(stream) / 256
			n := min(int(plan[i+1])%64+1, len(stream)-off)
			ps = append(ps, c.client(off, string(stream[off:off+n])))
		}
		ps = append(ps, c.client(0, string(stream)))
		data := capture(t, ng, layers.LinkTypeRaw, framesOf(t, layers.LinkTypeRaw, ps)...)
		var got []byte
		_, err := Read(bytes.NewReader(data), Options{}, func(s Segment) error {
			if s.Gap || s.Src != cli4 || !s.SYN {
				t.Fatalf("unexpected segment %+v", s)
			}
			got = append(got, s.Data...)
			return nil
		})
		if err != nil || !bytes.Equal(got, stream) {
			t.Fatalf("got %q (err %v), want %q", got, err, stream)
		}
	})
}

// corpusSeeds returns the beginning of each small capture of the corpus,
// cut after the last whole record within seedSize bytes. Seeds are kept
// small because the fuzzer minimizes each new input in time quadratic in
// its length (internal/fuzz/minimize.go), which would otherwise take the
// whole of a short run.
func corpusSeeds(tb testing.TB) [][]byte {
	const seedSize = 1200
	dir := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	var seeds [][]byte
	for _, pattern := range []string{"captures/*", "apple/captures/*"} {
		paths, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, p := range paths {
			if fi, err := os.Stat(p); err != nil || fi.Size() > 16<<10 {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				tb.Fatal(err)
			}
			seeds = append(seeds, wholeRecords(data, seedSize))
		}
	}
	return seeds
}

// wholeRecords cuts a pcap or pcapng capture after its last whole record
// (or block) that ends within limit bytes.
func wholeRecords(data []byte, limit int) []byte {
	if len(data) <= limit || len(data) < 24 {
		return data
	}
	order := binary.ByteOrder(binary.LittleEndian)
	at, next := 24, func(at int) int { return at + 16 + int(order.Uint32(data[at+8:])) }
	switch binary.BigEndian.Uint32(data) {
	case magicPcapng:
		if binary.BigEndian.Uint32(data[8:]) == 0x1a2b3c4d {
			order = binary.BigEndian
		}
		at, next = 0, func(at int) int { return at + int(order.Uint32(data[at+4:])) }
	case magicMicroBE, magicNanoBE:
		order = binary.BigEndian
	}
	for at+16 <= len(data) {
		end := next(at)
		if end <= at || end > limit {
			break
		}
		at = end
	}
	return data[:at]
}
