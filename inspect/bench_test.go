package inspect

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// chromiumHello returns a real Chromium-family hello from the corpus
// (JA4 t13d1516h2_8daaf6152771_...: Chrome/Edge), or the rebuilt one.
func chromiumHello(b *testing.B) []byte {
	for _, s := range corpusClientStreams(b) {
		msg, _, err := ReadClientHello(bytes.NewReader(s))
		if err != nil {
			continue
		}
		var h ClientHello
		if h.Unmarshal(msg) == nil && strings.HasPrefix(Fingerprint(&h, TransportTCP).JA4, "t13d1516h2_8daaf6152771_") {
			return msg
		}
	}
	b.Log("corpus absent: using the rebuilt Chromium-shaped hello")
	return chromium.marshal()
}

func BenchmarkParseClientHello(b *testing.B) {
	msg := chromiumHello(b)
	var h ClientHello
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Unmarshal(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAndFingerprint(b *testing.B) {
	msg := chromiumHello(b)
	var h ClientHello
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Unmarshal(msg); err != nil {
			b.Fatal(err)
		}
		Fingerprint(&h, TransportTCP)
	}
}

func BenchmarkReadClientHello(b *testing.B) {
	stream := records(recordHandshake, chromiumHello(b), 1<<14)
	r := bytes.NewReader(stream)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		if _, _, err := ReadClientHello(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCapture measures `tlsresume inspect` throughput, in hellos/s
// and MB/s, over every TCP capture of the corpus read one after another.
func BenchmarkReadCapture(b *testing.B) {
	dir := filepath.Join("..", "..", "shared", "corpora", "ja4corpus")
	paths, _ := filepath.Glob(filepath.Join(dir, "captures", "*.pcap*"))
	apple, _ := filepath.Glob(filepath.Join(dir, "apple", "captures", "*.pcap"))
	var files [][]byte
	var size int64
	for _, p := range append(paths, apple...) {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
		size += int64(len(data))
	}
	if len(files) == 0 {
		b.Skip("JA4 corpus not found beside the repository")
	}
	b.SetBytes(size)
	b.ReportAllocs()
	hellos := 0
	for b.Loop() {
		for _, data := range files {
			if _, err := ReadCapture(bytes.NewReader(data), func(*Record) error { hellos++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(hellos)/b.Elapsed().Seconds(), "hellos/s")
}

// BenchmarkQUICConnection measures reading one QUIC connection from a
// capture: a hello over two Initial packets and the server's Initial, so
// two key derivations (client's and server's keys from one secret), three
// header-protection removals and decryptions, CRYPTO reassembly, parsing
// and fingerprints. Its -benchmem allocations are per connection.
func BenchmarkQUICConnection(b *testing.B) {
	c := newQUICTestConn(QUICv1, "dcid0001", "scid01", "server")
	hello := quicHello(true)
	capture := udpCapture(b,
		udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(600, hello[600:]), 1200, nil)},
		udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(0, hello[:600]), 1200, nil)},
		udpFrame{dir: 1, data: c.initial(1, cryptoFrameBytes(0, quicServerHello(true)), 0, nil)})
	b.SetBytes(int64(len(capture)))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := ReadCapture(bytes.NewReader(capture), func(*Record) error { n++; return nil }); err != nil || n != 1 {
			b.Fatal(n, err)
		}
	}
}

// quicBenchFlow is the corpus's Chrome flow to Cloudflare (its handshake
// and the HTTP/3 exchange after it), or a synthetic handshake when the
// corpus is absent.
func quicBenchFlow(b *testing.B) *flowDatagrams {
	path := filepath.Join("..", "..", "shared", "corpora", "ja4corpus", "captures", "chrome-cloudflare-quic-with-secrets.pcapng")
	if _, err := os.Stat(path); err == nil {
		var best *flowDatagrams
		for _, fl := range captureFlows(b, path) {
			if best == nil || len(fl.dgs) > len(best.dgs) {
				best = fl
			}
		}
		return best
	}
	b.Log("corpus absent: using a synthetic handshake")
	qv := quicVersions[QUICv1]
	c := newQUICTestConn(QUICv1, "benchdcid", "cscid", "sscid")
	hello := quicHello(true)
	fl := &flowDatagrams{client: "10.0.0.1:50000", server: "10.0.0.2:443"}
	cli, srv := netip.MustParseAddrPort(fl.client), netip.MustParseAddrPort(fl.server)
	for _, d := range []pcap.Datagram{
		{Src: cli, Data: c.initial(0, cryptoFrameBytes(0, hello), 1200, nil)},
		{Src: srv, Data: append(c.initial(1, cryptoFrameBytes(0, quicServerHello(true)), 0, nil), c.opaque(1, qv.handshake, 900)...)},
		{Src: cli, Data: c.opaque(0, qv.handshake, 60)},
		{Src: cli, Data: append([]byte{0x41}, make([]byte, 1200)...)},
		{Src: srv, Data: append([]byte{0x41}, make([]byte, 1200)...)},
	} {
		fl.dgs = append(fl.dgs, d)
	}
	return fl
}

// feedFlow hands a flow's datagrams to a QUICFlow.
func feedFlow(qf *QUICFlow, client netip.AddrPort, dgs []pcap.Datagram) {
	for _, d := range dgs {
		if d.Src == client {
			qf.Client(d.Data, d.Time, 0)
		} else {
			qf.Server(d.Data, d.Time, 0)
		}
	}
}

// BenchmarkQUICFlowConnection reads one whole QUIC connection as the proxy
// does, datagram by datagram: its Initials decrypted, its hellos parsed,
// its record made. ns/datagram is the mean over the connection's
// datagrams.
func BenchmarkQUICFlowConnection(b *testing.B) {
	fl := quicBenchFlow(b)
	client := netip.MustParseAddrPort(fl.client)
	b.ReportAllocs()
	for b.Loop() {
		qf := QUICFlow{Source: SourceWireGuard, ClientAddr: fl.client, ServerAddr: fl.server, Emit: func(*Record) {}}
		feedFlow(&qf, client, fl.dgs)
		qf.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(fl.dgs)), "ns/datagram")
	b.ReportMetric(float64(len(fl.dgs)), "datagrams/conn")
}

// BenchmarkQUICFlowSettled is the cost of a datagram once the connection's
// handshake is read: what most of a long connection's datagrams cost.
func BenchmarkQUICFlowSettled(b *testing.B) {
	fl := quicBenchFlow(b)
	client := netip.MustParseAddrPort(fl.client)
	qf := QUICFlow{Source: SourceWireGuard, ClientAddr: fl.client, ServerAddr: fl.server, Emit: func(*Record) {}}
	feedFlow(&qf, client, fl.dgs)
	if qf.conn == nil || !qf.conn.settled() {
		b.Fatal("the flow's connection is not settled after its datagrams")
	}
	var oneRTT []pcap.Datagram
	for _, d := range fl.dgs {
		if len(d.Data) > 0 && d.Data[0]&0x80 == 0 {
			oneRTT = append(oneRTT, d)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		feedFlow(&qf, client, oneRTT)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(oneRTT)), "ns/datagram")
}
