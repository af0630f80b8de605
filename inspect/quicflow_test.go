package inspect

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// quicFlowTest feeds datagrams to a QUICFlow as the proxy does, and keeps
// what it hands on: the records, each with the connection it belongs to.
type quicFlowTest struct {
	flow    QUICFlow
	started []time.Time
	recs    []*Record
	conns   []int // per record: 1 for the flow's first connection, …
}

func newQUICFlowTest() *quicFlowTest {
	ft := &quicFlowTest{}
	ft.flow = QUICFlow{Source: SourceWireGuard, ClientAddr: "10.73.0.2:50000", ServerAddr: "192.0.2.1:443", History: NewSessionHistory(0),
		Started: func(t time.Time) { ft.started = append(ft.started, t) },
		Emit: func(r *Record) {
			ft.recs = append(ft.recs, r)
			ft.conns = append(ft.conns, len(ft.started))
		}}
	return ft
}

// feed hands the flow each frame, a millisecond apart, and checks that
// reading a datagram leaves its bytes as they were.
func (ft *quicFlowTest) feed(t *testing.T, frames ...udpFrame) {
	t.Helper()
	for i, f := range frames {
		before := bytes.Clone(f.data)
		at := time.Unix(1700000000, int64(i)*1e6)
		if f.dir == 0 {
			ft.flow.Client(f.data, at, 0)
		} else {
			ft.flow.Server(f.data, at, 0)
		}
		if !bytes.Equal(before, f.data) {
			t.Fatalf("datagram %d: reading it changed its bytes", i)
		}
	}
}

// TestQUICFlow: two connections on one flow, the second resuming with
// 0-RTT, as a live reader sees them: each started before its records,
// each record handed on once the client moved past its Initials (not at
// the end), and Initials after that no longer decrypted.
func TestQUICFlow(t *testing.T) {
	qv := quicVersions[QUICv1]
	ft := newQUICFlowTest()
	for i, resume := range []bool{false, true} {
		c := newQUICTestConn(QUICv1, fmt.Sprintf("dcid-%d", i), "cscid", fmt.Sprintf("sscid-%d", i))
		hello := quicHello(resume)
		p1 := c.initial(0, cryptoFrameBytes(0, hello[:900]), 1200, nil)
		p2 := c.initial(0, cryptoFrameBytes(900, hello[900:]), 1200, nil)
		if resume {
			p2 = append(p2, c.opaque(0, qv.zeroRTT, 60)...)
		}
		sh := c.initial(1, cryptoFrameBytes(0, quicServerHello(resume)), 0, nil)
		ft.feed(t, udpFrame{dir: 0, data: p1}, udpFrame{dir: 0, data: p2}, udpFrame{dir: 1, data: append(sh, c.opaque(1, qv.handshake, 200)...)})
		if len(ft.recs) != i {
			t.Fatalf("connection %d: %d records before the client's Handshake packet, want %d (0-RTT may still follow)", i+1, len(ft.recs), i)
		}
		ft.feed(t, udpFrame{dir: 0, data: c.opaque(0, qv.handshake, 50)})
		if len(ft.recs) != i+1 || ft.conns[i] != i+1 {
			t.Fatalf("connection %d: %d records after the client's Handshake packet (of connections %v)", i+1, len(ft.recs), ft.conns)
		}
		if !ft.flow.conn.settled() {
			t.Errorf("connection %d: not settled once its hello was answered and the client moved on", i+1)
		}
		// A later Initial of the connection's own is not decrypted: one
		// carrying another ServerHello changes nothing.
		ft.feed(t, udpFrame{dir: 1, data: c.initial(1, cryptoFrameBytes(0, quicServerHello(!resume)), 0, nil)},
			udpFrame{dir: 0, data: []byte{0x40, 1, 2, 3}})
	}
	ft.flow.Close()
	if len(ft.started) != 2 || len(ft.recs) != 2 {
		t.Fatalf("%d connections started, %d records; want 2 and 2", len(ft.started), len(ft.recs))
	}
	for i, r := range ft.recs {
		resume := i == 1
		if r.Source != SourceWireGuard || r.Transport != TransportNameQUIC || r.QUIC == nil || r.QUIC.DCID != fmt.Sprintf("%x", fmt.Sprintf("dcid-%d", i)) {
			t.Errorf("record %d: source %q transport %q quic %+v", i+1, r.Source, r.Transport, r.QUIC)
		}
		if r.ClientHello == nil || r.ServerHello == nil || r.ClientHello.PreSharedKey.Offered != resume ||
			r.ServerHello.Resumed != resume || r.EarlyDataSent != resume {
			t.Errorf("record %d: hello %v answer %+v early_data_sent %v; want psk, resumed and 0-RTT %v", i+1,
				r.ClientHello != nil, r.ServerHello, r.EarlyDataSent, resume)
		}
	}
}

// TestQUICFlowNoAnswer: a flow whose datagrams never reach the server
// (--quic block) still records the client's hello, at Close, with no
// answer; server datagrams before any client Initial are ignored.
func TestQUICFlowNoAnswer(t *testing.T) {
	ft := newQUICFlowTest()
	c := newQUICTestConn(QUICv2, "blocked1", "cs", "")
	ft.flow.Server([]byte{0x40, 1, 2}, time.Now(), 0)
	p := c.initial(0, cryptoFrameBytes(0, quicHello(true)), 1200, nil)
	ft.feed(t, udpFrame{dir: 0, data: p}, udpFrame{dir: 0, data: p}) // a retransmission
	ft.flow.Close()
	if len(ft.started) != 1 || len(ft.recs) != 1 {
		t.Fatalf("%d connections, %d records; want 1 and 1", len(ft.started), len(ft.recs))
	}
	r := ft.recs[0]
	if r.ClientHello == nil || !r.ClientHello.PreSharedKey.Offered || r.ServerHello != nil || r.QUIC.VersionName != "v2" {
		t.Errorf("record %+v: want the hello with its PSK, no answer, v2", r)
	}
}

// flowDatagrams are the datagrams of one UDP 4-tuple of a capture, with
// their direction as a live flow sees it: the end that sent the first is
// the client (a WireGuard device's flow starts with its first datagram).
type flowDatagrams struct {
	client, server string
	dgs            []pcap.Datagram
}

// captureFlows splits a capture's UDP datagrams by 4-tuple, in order of
// first appearance; their bytes are copied.
func captureFlows(t testing.TB, path string) []*flowDatagrams {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byKey := map[connKey]*flowDatagrams{}
	var flows []*flowDatagrams
	if _, err := pcap.Read(bufio.NewReader(f), pcap.Options{UDP: func(d pcap.Datagram) error {
		k := keyOf(d.Src, d.Dst)
		fl := byKey[k]
		if fl == nil {
			fl = &flowDatagrams{client: d.Src.String(), server: d.Dst.String()}
			byKey[k] = fl
			flows = append(flows, fl)
		}
		d.Data = bytes.Clone(d.Data)
		fl.dgs = append(fl.dgs, d)
		return nil
	}}, func(pcap.Segment) error { return nil }); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return flows
}

// liveRecords reads each flow through a QUICFlow of its own, as the proxy
// does, and returns the records by client and server address, and the
// connections started.
func liveRecords(flows []*flowDatagrams) (map[string][]*Record, int) {
	out := map[string][]*Record{}
	started := 0
	history := NewSessionHistory(0)
	for _, fl := range flows {
		qf := QUICFlow{Source: SourcePcap, ClientAddr: fl.client, ServerAddr: fl.server, History: history,
			Started: func(time.Time) { started++ },
			Emit:    func(r *Record) { out[r.ClientAddr+" "+r.ServerAddr] = append(out[r.ClientAddr+" "+r.ServerAddr], r) }}
		for _, d := range fl.dgs {
			if d.Src.String() == fl.client {
				qf.Client(d.Data, d.Time, d.Frame)
			} else {
				qf.Server(d.Data, d.Time, d.Frame)
			}
		}
		qf.Close()
	}
	return out, started
}

// quicCaptures are the corpus's captures.
func quicCaptures(t testing.TB) []string {
	dir := corpusDir(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "captures", "*.pcap*"))
	apple, _ := filepath.Glob(filepath.Join(dir, "apple", "captures", "*.pcap*"))
	return append(paths, apple...)
}

// TestQUICFlowAgreesWithCapture reads every capture of the corpus twice:
// with ReadCapture, which follows QUIC connections by 4-tuple, and flow by
// flow through QUICFlow as the proxy reads a device's flows. Every QUIC
// connection must give the same records, field by field.
func TestQUICFlowAgreesWithCapture(t *testing.T) {
	total := 0
	for _, path := range quicCaptures(t) {
		total += LiveAgrees(t, path)
	}
	t.Logf("%d QUIC records compared", total)
	if total < 51 {
		t.Errorf("%d QUIC records compared; the corpus has 51 QUIC hellos", total)
	}
}

// LiveAgrees reads the capture at path with ReadCapture and, flow by flow,
// through QUICFlow, fails t unless every QUIC record is the same in both,
// field by field, and returns how many were compared. Exported for the
// package's external tests (the real clients' captures).
func LiveAgrees(t testing.TB, path string) int {
	t.Helper()
	name := filepath.Base(path)
	var want []*Record
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadCapture(bufio.NewReader(f), func(r *Record) error {
		if r.Transport == TransportNameQUIC {
			want = append(want, r)
		}
		return nil
	})
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got, started := liveRecords(captureFlows(t, path))
	if started != st.QUICConnections {
		t.Errorf("%s: %d QUIC connections live, %d in the capture", name, started, st.QUICConnections)
	}
	n := 0
	for _, w := range want {
		k := w.ClientAddr + " " + w.ServerAddr
		if len(got[k]) == 0 {
			t.Errorf("%s frame %d: no live record for %s", name, w.Frame, k)
			continue
		}
		g := got[k][0]
		got[k] = got[k][1:]
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s frame %d: live record\n%s\ncapture record\n%s", name, w.Frame, gj, wj)
		}
		n++
	}
	for k, rs := range got {
		for _, r := range rs {
			t.Errorf("%s: a live record the capture does not have, %s frame %d", name, k, r.Frame)
		}
	}
	return n
}

// quicFlowInput frames the first datagrams of a flow, its handshake's,
// for FuzzQUICFlow as quicDatagrams does: a direction byte, a two-byte
// length, the bytes. (The fuzzer stalls on inputs of tens of kilobytes.)
func quicFlowInput(fl *flowDatagrams) []byte {
	var frames []udpFrame
	for _, d := range fl.dgs[:min(len(fl.dgs), 8)] {
		dir := 0
		if d.Src.String() != fl.client {
			dir = 1
		}
		frames = append(frames, udpFrame{dir: dir, data: d.Data[:min(len(d.Data), 0xffff)]})
	}
	return quicDatagrams(frames...)
}

// FuzzQUICFlow feeds one flow's datagrams to a QUICFlow, seeded with every
// QUIC flow of the corpus and synthetic connections. Whatever they hold:
// no datagram is changed, records come after their connection started,
// each with its QUIC facts, a bounded number per connection, and the
// capture reader makes the same records of the same datagrams. Run it with
// -fuzzminimizetime 1x: minimizing an input of several Initials takes the
// default minute each time a mutation finds new code, and fuzzing stalls.
func FuzzQUICFlow(f *testing.F) {
	dir := filepath.Join("..", "..", "shared", "corpora", "ja4corpus")
	paths, _ := filepath.Glob(filepath.Join(dir, "captures", "*.pcap*"))
	for _, p := range paths {
		for _, fl := range captureFlows(f, p) {
			if slices.ContainsFunc(fl.dgs, func(d pcap.Datagram) bool { return looksLikeClientInitial(d.Data) }) {
				f.Add(quicFlowInput(fl))
			}
		}
	}
	qv := quicVersions[QUICv1]
	c := newQUICTestConn(QUICv1, "dcid0001", "scid01", "server")
	hello := quicHello(true)
	f.Add(quicDatagrams(udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(0, hello), 1200, nil)},
		udpFrame{dir: 1, data: c.initial(1, cryptoFrameBytes(0, quicServerHello(true)), 0, nil)},
		udpFrame{dir: 0, data: c.opaque(0, qv.handshake, 40)}, udpFrame{dir: 0, data: []byte{0x41, 0}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		ft := newQUICFlowTest()
		var frames []udpFrame
		for len(in) >= 3 {
			n := min(int(in[1])<<8|int(in[2]), len(in)-3)
			frames = append(frames, udpFrame{dir: int(in[0] & 1), data: in[3 : 3+n]})
			in = in[3+n:]
		}
		emitted := 0
		ft.flow.Emit = func(r *Record) {
			emitted++
			if len(ft.started) == 0 || r.Transport != TransportNameQUIC || r.QUIC == nil {
				t.Fatalf("record before its connection started, or without its QUIC facts: %+v", r)
			}
			ft.recs = append(ft.recs, r)
		}
		ft.feed(t, frames...)
		ft.flow.Close()
		if emitted > 4*len(ft.started) {
			t.Fatalf("%d records from %d connections", emitted, len(ft.started))
		}
		// The capture reader, given the same datagrams, agrees.
		var fromCapture []*Record
		cr := captureReader{conns: map[connKey]*captureConn{}, quic: map[connKey]*captureFlow{}, history: NewSessionHistory(0),
			fn: func(r *Record) error { fromCapture = append(fromCapture, r); return nil }}
		cli, srv := netip.MustParseAddrPort("10.73.0.2:50000"), netip.MustParseAddrPort("192.0.2.1:443")
		started := false
		for i, fr := range frames {
			d := pcap.Datagram{Src: cli, Dst: srv, Data: fr.data, Time: time.Unix(1700000000, int64(i)*1e6)}
			if fr.dir == 1 {
				d.Src, d.Dst = srv, cli
			}
			// A live flow's client is the end that sent first; the capture
			// reader's, the first to send an Initial: compare flows where
			// the two are one.
			if !started && fr.dir == 1 && looksLikeClientInitial(fr.data) {
				return
			}
			started = started || fr.dir == 0 && looksLikeClientInitial(fr.data)
			cr.datagram(d)
		}
		cr.closeAll()
		for _, r := range ft.recs {
			r.Source, r.ClientAddr, r.ServerAddr = SourcePcap, cli.String(), srv.String()
		}
		a, _ := json.Marshal(ft.recs)
		b, _ := json.Marshal(fromCapture)
		if len(ft.recs) != len(fromCapture) || !bytes.Equal(a, b) {
			t.Fatalf("live records\n%s\ncapture records\n%s", a, b)
		}
	})
}
