package pcap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The real captures live outside the repository, in the shared corpora.

// ja4corpus returns the ja4corpus directory, or skips the test without it.
func ja4corpus(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("no capture corpus: %v", err)
	}
	return dir
}

// corpusCaptures lists the captures to read, relative to ja4corpus.
func corpusCaptures(t testing.TB) (string, []string) {
	t.Helper()
	dir := ja4corpus(t)
	var names []string
	for _, pattern := range []string{"captures/*.pcap*", "apple/captures/*.pcap"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
	}
	if len(names) == 0 {
		t.Skipf("no captures in %s", dir)
	}
	return dir, names
}

func TestCorpus(t *testing.T) {
	dir, names := corpusCaptures(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			streams, st := collect(t, filepath.Join(dir, name), Options{})
			if st.Packets == 0 || st.Packets != st.TCPPackets+st.UDPPackets+st.Skipped+st.Malformed {
				t.Errorf("stats %+v do not add up", st)
			}
			var bytes int
			for _, s := range streams {
				bytes += len(s.data)
			}
			t.Logf("%+v, %d directions, %d bytes", st, len(streams), bytes)
		})
	}
}

// TestCorpusTLSRecords checks that every stream of tls-handshake.pcapng that
// starts like a TLS handshake record holds the whole first record. The
// capture starts after the handshakes (it holds no SYN), so client streams
// are told by their first message, a ClientHello (type 1), not by Segment.SYN.
func TestCorpusTLSRecords(t *testing.T) {
	path := filepath.Join(ja4corpus(t), "captures", "tls-handshake.pcapng")
	streams, _ := collect(t, path, Options{})
	checked, clients := 0, 0
	for k, s := range streams {
		if len(s.data) == 0 || s.data[0] != 0x16 {
			continue
		}
		checked++
		if len(s.data) > 5 && s.data[5] == 1 {
			clients++
		}
		if len(s.data) < 5 {
			t.Errorf("%s: %d bytes, shorter than a record header", k, len(s.data))
			continue
		}
		if n := 5 + int(binary.BigEndian.Uint16(s.data[3:5])); len(s.data) < n {
			t.Errorf("%s: %d bytes, the first record needs %d", k, len(s.data), n)
		}
		if len(s.gaps) > 0 {
			t.Errorf("%s: gaps at %v", k, s.gaps)
		}
	}
	if clients == 0 {
		t.Fatal("no client stream starts with a handshake record")
	}
	t.Logf("%d streams (%d of them clients) start with a handshake record", checked, clients)
}

// groundTruth is the part of a ja4corpus record this test uses.
type groundTruth struct {
	Capture   string `json:"capture"`
	Frame     int    `json:"frame"`
	Transport string `json:"transport"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Random    string `json:"random"`
}

// TestCorpusGroundTruth checks the reassembly against tshark's: each
// ClientHello tshark found over TCP is in the reassembled client stream,
// and the Segment that completed it came from the frame tshark names.
func TestCorpusGroundTruth(t *testing.T) {
	dir := ja4corpus(t)
	byCapture := make(map[string][]groundTruth)
	for _, file := range []string{"ground_truth.jsonl", "apple/ground_truth_apple.jsonl"} {
		for _, gt := range readGroundTruth(t, filepath.Join(dir, file)) {
			if gt.Transport == "tcp" {
				byCapture[gt.Capture] = append(byCapture[gt.Capture], gt)
			}
		}
	}
	if len(byCapture) == 0 {
		t.Skip("no TCP hellos in the ground truth")
	}
	hellos := 0
	for capture, gts := range byCapture {
		hellos += len(gts)
		t.Run(capture, func(t *testing.T) {
			streams, _ := collect(t, filepath.Join(dir, capture), Options{})
			for _, gt := range gts {
				s := get(streams, addrPort(t, gt.Src).String()+">"+addrPort(t, gt.Dst).String())
				random, err := hex.DecodeString(gt.Random)
				if err != nil {
					t.Fatal(err)
				}
				// tshark keys hellos by frame; a HelloRetryRequest makes the
				// second hello repeat the random (RFC 8446 §4.1.2), so look at each.
				found, frames := false, []int{}
				for at := 0; ; {
					i := bytes.Index(s.data[at:], random)
					if i < 0 {
						break
					}
					found, at = true, at+i+len(random)
					frames = append(frames, helloFrame(s, at-len(random)))
				}
				switch {
				case !found:
					t.Errorf("frame %d: random of %s>%s not in the %d-byte client stream", gt.Frame, gt.Src, gt.Dst, len(s.data))
				case !slices.Contains(frames, gt.Frame):
					t.Errorf("frame %d: hello of %s>%s delivered by frames %v", gt.Frame, gt.Src, gt.Dst, frames)
				}
			}
		})
	}
	t.Logf("%d hellos in %d captures", hellos, len(byCapture))
}

// helloFrame returns the Frame of the Segment that completed the
// ClientHello whose random is at offset at, or -1 if the bytes before it do
// not look like one.
func helloFrame(s *stream, at int) int {
	// record header (5), handshake type (1), length (3), version (2), random
	msg := at - 6
	if msg < 5 || s.data[msg-5] != 0x16 || s.data[msg] != 1 {
		return -1
	}
	end := msg + 4 + (int(s.data[msg+1])<<16 | int(s.data[msg+2])<<8 | int(s.data[msg+3]))
	i, _ := slices.BinarySearch(s.ends, end)
	if i == len(s.ends) {
		return -1
	}
	return s.frames[i]
}

func readGroundTruth(t testing.TB, path string) []groundTruth {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var gts []groundTruth
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var gt groundTruth
		if err := json.Unmarshal(sc.Bytes(), &gt); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		gts = append(gts, gt)
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return gts
}

// addrPort parses tshark's "addr:port", whose IPv6 addresses have no brackets.
func addrPort(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	i := strings.LastIndexByte(s, ':')
	addr, err := netip.ParseAddr(s[:max(i, 0)])
	port, perr := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil || perr != nil {
		t.Fatalf("bad address %q", s)
	}
	return netip.AddrPortFrom(addr, uint16(port))
}

// BenchmarkRead reads the largest capture of the corpus.
func BenchmarkRead(b *testing.B) {
	dir, names := corpusCaptures(b)
	var data []byte
	var name string
	for _, n := range names {
		d, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			b.Fatal(err)
		}
		if len(d) > len(data) {
			data, name = d, n
		}
	}
	b.Logf("%s, %d bytes", name, len(data))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var delivered int
	for b.Loop() {
		_, err := Read(bytes.NewReader(data), Options{}, func(s Segment) error {
			delivered += len(s.Data)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
