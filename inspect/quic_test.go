package inspect

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInitialKeyVectors checks the Initial secrets and keys against the
// test vectors of RFC 9001, Appendix A.1 and RFC 9369, Appendix A.1
// (Destination Connection ID 0x8394c8f03e515708).
func TestInitialKeyVectors(t *testing.T) {
	dcid := unhex(t, "8394c8f03e515708")
	for _, tc := range []struct {
		version             uint32
		clientSecret        string
		clientKey, clientIV string
		clientHP            string
		serverSecret        string
		serverKey, serverIV string
		serverHP            string
	}{
		{
			version:      QUICv1,
			clientSecret: "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
			clientKey:    "1f369613dd76d5467730efcbe3b1a22d", clientIV: "fa044b2f42a3fd3b46fb255c",
			clientHP:     "9f50449e04a0e810283a1e9933adedd2",
			serverSecret: "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
			serverKey:    "cf3a5331653c364c88f0f379b6067e37", serverIV: "0ac1493ca1905853b0bba03e",
			serverHP: "c206b8d9b9f0f37644430b490eeaa314",
		},
		{
			version:      QUICv2,
			clientSecret: "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
			clientKey:    "8b1a0bc121284290a29e0971b5cd045d", clientIV: "91f73e2351d8fa91660e909f",
			clientHP:     "45b95e15235d6f45a6b19cbcb0294ba9",
			serverSecret: "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
			serverKey:    "82db637861d55e1d011f19ea71d5d2a7", serverIV: "dd13c276499c0249d3310652",
			serverHP: "edf6d05c83121201b436e16877593c3a",
		},
	} {
		qv := quicVersions[tc.version]
		cs, ss := initialSecrets(qv, dcid)
		for _, side := range []struct {
			name                    string
			secret                  []byte
			wantSecret              string
			wantKey, wantIV, wantHP string
		}{
			{"client", cs, tc.clientSecret, tc.clientKey, tc.clientIV, tc.clientHP},
			{"server", ss, tc.serverSecret, tc.serverKey, tc.serverIV, tc.serverHP},
		} {
			key, iv, hp := qv.keyMaterial(side.secret)
			got := []string{hex.EncodeToString(side.secret), hex.EncodeToString(key), hex.EncodeToString(iv), hex.EncodeToString(hp)}
			want := []string{side.wantSecret, side.wantKey, side.wantIV, side.wantHP}
			for i, name := range []string{"secret", "key", "iv", "hp"} {
				if got[i] != want[i] {
					t.Errorf("%s %s %s = %s, want %s", qv.name, side.name, name, got[i], want[i])
				}
			}
		}
	}
}

// TestServerInitialVectors opens the protected server Initial of RFC 9001,
// Appendix A.3 and RFC 9369, Appendix A.3: an ACK and a CRYPTO frame
// holding a ServerHello for TLS_AES_128_GCM_SHA256.
func TestServerInitialVectors(t *testing.T) {
	dcid := unhex(t, "8394c8f03e515708")
	for version, pkt := range map[uint32]string{
		QUICv1: "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc42158407dd074ee",
		QUICv2: "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca84bed8521e2e140",
	} {
		b := unhex(t, pkt)
		orig := bytes.Clone(b)
		h, err := parseLongHeader(b)
		if err != nil || h.typ != quicInitial || h.version != version {
			t.Fatalf("%08x: header %+v, %v", version, h, err)
		}
		_, server := initialKeys(quicVersions[version], dcid)
		payload, pn, err := server.open(b[:h.length], &h, -1)
		if err != nil {
			t.Fatalf("%08x: %v", version, err)
		}
		if !bytes.Equal(b, orig) {
			t.Errorf("%08x: open changed the packet", version)
		}
		if pn != 1 {
			t.Errorf("%08x: packet number %d, want 1", version, pn)
		}
		var crypto []byte
		if err := quicFrames(payload, func(f cryptoFrame) { crypto = append(crypto, f.data...) }); err != nil {
			t.Fatal(err)
		}
		var sh ServerHello
		if err := sh.Unmarshal(crypto); err != nil {
			t.Fatalf("%08x: %v", version, err)
		}
		if sh.CipherSuite != 0x1301 || sh.Version() != VersionTLS13 {
			t.Errorf("%08x: ServerHello cipher %#x version %#x", version, sh.CipherSuite, sh.Version())
		}
	}
}

// quicTestConn builds the packets of one QUIC connection for tests: long
// headers, CRYPTO frames, protection with the Initial keys.
type quicTestConn struct {
	version     uint32
	dcid, scid  []byte // the client's
	serverSCID  []byte
	client, srv *quicKeys
	pn          [2]int64
}

func newQUICTestConn(version uint32, dcid, scid, serverSCID string) *quicTestConn {
	c := &quicTestConn{version: version, dcid: []byte(dcid), scid: []byte(scid), serverSCID: []byte(serverSCID)}
	c.client, c.srv = initialKeys(quicVersions[version], c.dcid)
	return c
}

func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v < 1<<30:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func cryptoFrameBytes(off int, data []byte) []byte {
	b := appendVarint([]byte{frameQUICCrypto}, uint64(off))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// longHeader starts a long-header packet of a type code of this version.
func longHeader(version uint32, code uint8, dcid, scid []byte) []byte {
	b := []byte{0xc0 | code<<4}
	b = binary.BigEndian.AppendUint32(b, version)
	b = append(b, byte(len(dcid)))
	b = append(b, dcid...)
	b = append(b, byte(len(scid)))
	return append(b, scid...)
}

// initial seals an Initial packet (dir 0 client, 1 server) holding frames,
// padded to at least pad bytes of payload.
func (c *quicTestConn) initial(dir int, frames []byte, pad int, token []byte) []byte {
	qv := quicVersions[c.version]
	dcid, scid, keys := c.dcid, c.scid, c.client
	if dir == 1 {
		dcid, scid, keys = c.scid, c.serverSCID, c.srv
	}
	if len(frames) < pad {
		frames = append(frames, make([]byte, pad-len(frames))...)
	}
	pn := c.pn[dir]
	c.pn[dir]++
	hdr := longHeader(c.version, qv.initial, dcid, scid)
	hdr = appendVarint(hdr, uint64(len(token)))
	hdr = append(hdr, token...)
	hdr = appendVarint(hdr, uint64(2+len(frames)+16)) // 2-byte packet number
	hdr[0] |= 1                                       // packet number length 2
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(pn))
	nonce := keys.iv
	for i := range 8 {
		nonce[11-i] ^= byte(uint64(pn) >> (8 * i))
	}
	pkt := keys.aead.Seal(hdr, nonce[:], frames, hdr)
	var mask [16]byte
	keys.hp.Encrypt(mask[:], pkt[pnOff+4:pnOff+4+16])
	pkt[0] ^= mask[0] & 0x0f
	pkt[pnOff] ^= mask[1]
	pkt[pnOff+1] ^= mask[2]
	return pkt
}

// opaque is a long-header packet of another type whose payload is not read
// (0-RTT, Handshake): n bytes after a length field.
func (c *quicTestConn) opaque(dir int, code uint8, n int) []byte {
	dcid, scid := c.dcid, c.scid
	if dir == 1 {
		dcid, scid = c.scid, c.serverSCID
	}
	b := longHeader(c.version, code, dcid, scid)
	b = appendVarint(b, uint64(n))
	return append(b, make([]byte, n)...)
}

// udpCapture writes datagrams as a raw-IP pcap: even ones from the client
// 10.0.0.1:50000 to 10.0.0.2:443, or per the dir given.
type udpFrame struct {
	dir  int
	data []byte
	port uint16 // the client's; 0 means 50000
}

func udpCapture(t testing.TB, frames ...udpFrame) []byte {
	t.Helper()
	var out bytes.Buffer
	w := pcapgo.NewWriter(&out)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	cli, srv := net.IP{10, 0, 0, 1}, net.IP{10, 0, 0, 2}
	for i, f := range frames {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: cli, DstIP: srv}
		port := layers.UDPPort(50000)
		if f.port != 0 {
			port = layers.UDPPort(f.port)
		}
		udp := &layers.UDP{SrcPort: port, DstPort: 443}
		if f.dir == 1 {
			ip.SrcIP, ip.DstIP = srv, cli
			udp.SrcPort, udp.DstPort = 443, port
		}
		_ = udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(f.data)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1e6), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

func readQUICCapture(t *testing.T, capture []byte) ([]*Record, CaptureStats) {
	t.Helper()
	var recs []*Record
	st, err := ReadCapture(bytes.NewReader(capture), func(r *Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, st
}

// quicHello is a TLS 1.3 ClientHello as a QUIC client sends it: h3,
// quic_transport_parameters, and a PSK when resuming.
func quicHello(resume bool) []byte {
	tp := appendVarint(nil, 0x04) // initial_max_data
	tp = appendVarint(tp, 4)
	tp = append(tp, 0x80, 0x10, 0, 0)
	tp = appendVarint(tp, 0x0f) // initial_source_connection_id
	tp = appendVarint(tp, 0)
	tp = appendVarint(tp, 0x2ab2) // a GREASE-like id, two bytes
	tp = appendVarint(tp, 0)
	exts := []testExt{
		extSNI("h3.example"), extALPN("h3"),
		extU16List8(ExtSupportedVersions, VersionTLS13),
		extU16List16(ExtSupportedGroups, 29), extKeyShare(29),
		extU16List16(ExtSignatureAlgorithms, 0x0403),
		extModes(1), {ExtQUICTransportParams, tp},
		// a large extension, so that the hello needs two Initial packets
		extBytes(ExtPadding, 1500),
	}
	if resume {
		exts = append(exts, extEmpty(ExtEarlyData), extPSK(1234, 100))
	}
	return testHello{version: VersionTLS12, random: 7, ciphers: []uint16{0x1301}, extensions: exts}.marshal()
}

func quicServerHello(psk bool) []byte {
	exts := []testExt{{ExtSupportedVersions, []byte{0x03, 0x04}}}
	exts = append(exts, testExt{ExtKeyShare, append([]byte{0, 29, 0, 32}, make([]byte, 32)...)})
	if psk {
		exts = append(exts, testExt{ExtPreSharedKey, []byte{0, 0}})
	}
	return testServerHello(VersionTLS12, nil, false, exts...)
}

// TestQUICInitials reads synthetic QUIC v1 and v2 connections: a hello in
// two packets with its CRYPTO frames out of order, padding and PING, the
// server's Initial coalesced with a Handshake packet, 0-RTT after the hello.
func TestQUICInitials(t *testing.T) {
	for _, version := range []uint32{QUICv1, QUICv2} {
		qv := quicVersions[version]
		c := newQUICTestConn(version, "dcid0001", "scid01", "server-scid-1")
		hello := quicHello(true)
		half := len(hello) / 2
		// The second half first, then the first half with a PING between.
		p1 := c.initial(0, cryptoFrameBytes(half, hello[half:]), 1200, nil)
		p2 := c.initial(0, append(append(cryptoFrameBytes(0, hello[:20]), frameQUICPing), cryptoFrameBytes(20, hello[20:half])...), 1200, nil)
		zeroRTT := c.opaque(0, qv.zeroRTT, 100)
		ack := []byte{frameQUICAck, 1, 0, 0, 1} // largest 1, delay 0, 0 ranges, first range 1
		sh := c.initial(1, append(ack, cryptoFrameBytes(0, quicServerHello(true))...), 0, nil)
		hs := c.opaque(1, qv.handshake, 300)
		recs, st := readQUICCapture(t, udpCapture(t,
			udpFrame{dir: 0, data: p1},
			udpFrame{dir: 0, data: append(p2, zeroRTT...)}, // coalesced
			udpFrame{dir: 1, data: append(sh, hs...)},
			udpFrame{dir: 0, data: c.opaque(0, qv.handshake, 50)},
			udpFrame{dir: 0, data: []byte{0x40, 1, 2, 3}}, // 1-RTT
		))
		if len(recs) != 1 || st.QUICConnections != 1 || st.UDPPackets != 5 {
			t.Fatalf("%s: %d records, stats %+v", qv.name, len(recs), st)
		}
		r := recs[0]
		if r.Error != "" || r.ClientHello == nil || r.ServerHello == nil {
			t.Fatalf("%s: record %+v", qv.name, r)
		}
		want := QUICFacts{Version: fmt.Sprintf("%08x", version), VersionName: qv.name, DCID: hex.EncodeToString([]byte("dcid0001")),
			SCID: hex.EncodeToString([]byte("scid01")), ServerSCID: hex.EncodeToString([]byte("server-scid-1"))}
		if r.QUIC == nil || r.QUIC.Version != want.Version || r.QUIC.VersionName != want.VersionName ||
			r.QUIC.DCID != want.DCID || r.QUIC.SCID != want.SCID || r.QUIC.ServerSCID != want.ServerSCID {
			t.Errorf("%s: quic %+v, want %+v", qv.name, r.QUIC, want)
		}
		if r.Transport != "quic" || r.Frame != 2 || r.SNI != "h3.example" || !strings.HasPrefix(r.ClientHello.JA4, "q13d") {
			t.Errorf("%s: transport %q frame %d sni %q ja4 %s", qv.name, r.Transport, r.Frame, r.SNI, r.ClientHello.JA4)
		}
		if !r.ServerHello.Resumed || !r.ClientHello.PreSharedKey.Offered || !r.ClientHello.EarlyData || !r.EarlyDataSent {
			t.Errorf("%s: resumed %v psk %v early_data %v early_data_sent %v", qv.name, r.ServerHello.Resumed,
				r.ClientHello.PreSharedKey.Offered, r.ClientHello.EarlyData, r.EarlyDataSent)
		}
		if got := r.ClientHello.QUICTransportParameters; len(got) != 3 || got[0] != 4 || got[1] != 0x0f || got[2] != 0x2ab2 {
			t.Errorf("%s: transport parameters %v", qv.name, got)
		}
	}
}

// TestQUICRetry: the server answers the first Initial with a Retry; the
// client sends its hello again to the Retry's connection ID, with new keys.
func TestQUICRetry(t *testing.T) {
	qv := quicVersions[QUICv1]
	c := newQUICTestConn(QUICv1, "firstdcid", "cscid", "")
	hello := quicHello(false)
	first := c.initial(0, cryptoFrameBytes(0, hello), 1200, nil)
	retry := longHeader(QUICv1, qv.retry, c.scid, []byte("retry-scid"))
	retry = append(retry, []byte("a-token-of-24-bytes-long")...)
	retry = append(retry, make([]byte, 16)...) // integrity tag
	c2 := newQUICTestConn(QUICv1, "retry-scid", "cscid", "final-scid")
	second := c2.initial(0, cryptoFrameBytes(0, hello), 1200, []byte("a-token-of-24-bytes-long"))
	sh := c2.initial(1, cryptoFrameBytes(0, quicServerHello(false)), 0, nil)
	recs, _ := readQUICCapture(t, udpCapture(t, udpFrame{dir: 0, data: first}, udpFrame{dir: 1, data: retry}, udpFrame{dir: 0, data: second}, udpFrame{dir: 1, data: sh}))
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	r0, r1 := recs[0], recs[1]
	if r0.ServerHello != nil || r0.QUIC.Retry == nil || r0.QUIC.DCID != hex.EncodeToString([]byte("firstdcid")) || r0.QUIC.Retry.SCID != hex.EncodeToString([]byte("retry-scid")) || r0.QUIC.Retry.TokenLen != 24 {
		t.Errorf("hello before the Retry: server_hello %+v, quic %+v retry %+v", r0.ServerHello, r0.QUIC, r0.QUIC.Retry)
	}
	if r1.ServerHello == nil || r1.ServerHello.Resumed || r1.QUIC.DCID != hex.EncodeToString([]byte("retry-scid")) ||
		r1.QUIC.ServerSCID != hex.EncodeToString([]byte("final-scid")) || r1.Frame != 3 {
		t.Errorf("hello after the Retry: server_hello %+v, quic %+v, frame %d", r1.ServerHello, r1.QUIC, r1.Frame)
	}
}

// TestQUICVersionsNotRead: a version whose keys are unknown is recorded as
// such with the server's Version Negotiation; the client's next attempt in
// v1 on the same port is a connection of its own. Datagrams that are not
// QUIC make no record.
func TestQUICVersionsNotRead(t *testing.T) {
	grease := longHeader(0x1a2a3a4a, 0, []byte("greasedcid"), []byte("gscid"))
	grease = append(grease, make([]byte, 1200)...)
	vn := longHeader(0, 0, []byte("gscid"), []byte("greasedcid"))
	vn[0] = 0x80
	vn = binary.BigEndian.AppendUint32(vn, QUICv1)
	vn = binary.BigEndian.AppendUint32(vn, QUICv2)
	c := newQUICTestConn(QUICv1, "realdcid", "gscid", "s")
	v1 := c.initial(0, cryptoFrameBytes(0, quicHello(false)), 1200, nil)
	rtp := append([]byte{0x80, 0x60}, make([]byte, 1300)...) // RTP version 2
	corrupt := newQUICTestConn(QUICv1, "otherdcid", "x", "").initial(0, cryptoFrameBytes(0, quicHello(false)), 1200, nil)
	corrupt[len(corrupt)-1] ^= 1
	dns := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	capture := udpCapture(t, udpFrame{dir: 0, data: grease}, udpFrame{dir: 1, data: vn}, udpFrame{dir: 0, data: v1}, udpFrame{dir: 0, data: rtp}, udpFrame{dir: 0, data: dns})
	recs, st := readQUICCapture(t, capture)
	if len(recs) != 2 || st.QUICConnections != 2 {
		t.Fatalf("%d records, %d connections", len(recs), st.QUICConnections)
	}
	g := recs[0]
	if g.ClientHello != nil || !strings.Contains(g.Error, "version grease (1a2a3a4a)") || g.QUIC.VersionName != "grease" ||
		len(g.QUIC.VersionNegotiation) != 2 || g.QUIC.VersionNegotiation[1] != "6b3343cf" {
		t.Errorf("greased version: error %q quic %+v", g.Error, g.QUIC)
	}
	if recs[1].ClientHello == nil || recs[1].QUIC.DCID != hex.EncodeToString([]byte("realdcid")) {
		t.Errorf("v1 after negotiation: %+v", recs[1])
	}
	recs, _ = readQUICCapture(t, udpCapture(t, udpFrame{dir: 0, data: corrupt}))
	if len(recs) != 1 || recs[0].ClientHello != nil || !strings.Contains(recs[0].Error, "does not decrypt") {
		t.Errorf("a corrupted Initial: %+v", recs)
	}
}

// TestCryptoStreamOrder hands a stream's bytes over in every order and
// overlap of four frames, and checks they come out once, in order.
func TestCryptoStreamOrder(t *testing.T) {
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	frames := []cryptoFrame{{0, data[:10]}, {8, data[8:20]}, {20, data[20:30]}, {25, data[25:]}}
	perm := func(yield func([]int) bool) {
		var gen func(a []int, k int) bool
		gen = func(a []int, k int) bool {
			if k == len(a) {
				return yield(append([]int(nil), a...))
			}
			for i := k; i < len(a); i++ {
				a[k], a[i] = a[i], a[k]
				if !gen(a, k+1) {
					return false
				}
				a[k], a[i] = a[i], a[k]
			}
			return true
		}
		gen([]int{0, 1, 2, 3}, 0)
	}
	for order := range perm {
		var s cryptoStream
		var got []byte
		for _, i := range order {
			if err := s.add(frames[i], func(b []byte) { got = append(got, b...) }); err != nil {
				t.Fatal(err)
			}
			_ = s.add(frames[i], func(b []byte) { got = append(got, b...) }) // a retransmission
		}
		if !bytes.Equal(got, data) || s.gap() {
			t.Errorf("order %v: %q, gap %v", order, got, s.gap())
		}
	}
	var s cryptoStream
	if err := s.add(cryptoFrame{maxCryptoStream - 1, []byte("xy")}, func([]byte) {}); err == nil {
		t.Error("a frame past the bound was taken")
	}
}

// TestExplainEarlyData: 0-RTT sent with a PSK the server refused is said
// lost; with a PSK it took, whether the data was taken stays unsaid.
func TestExplainEarlyData(t *testing.T) {
	ch := &ClientHelloRecord{Attempt: AttemptPSK, PreSharedKey: PSKFact{Offered: true, Identities: []PSKIdentity{{Len: 100}}}, EarlyData: true}
	refused := &Record{ClientHello: ch, EarlyDataSent: true, ServerHello: &ServerHelloRecord{Version: int(VersionTLS13), Complete: true}}
	taken := &Record{ClientHello: ch, EarlyDataSent: true, ServerHello: &ServerHelloRecord{Version: int(VersionTLS13), Complete: true, Resumed: true, ResumedBy: attemptPtr(AttemptPSK)}}
	if got := Explain(refused); !strings.HasSuffix(got, "server did not select the PSK: full handshake; its 0-RTT data was lost with the PSK") {
		t.Errorf("refused: %q", got)
	}
	if got := Explain(taken); !strings.HasPrefix(got, "offered a PSK (1 identity); TLS 1.3 server resumed") || !strings.HasSuffix(got, "whether the server took it is encrypted)") {
		t.Errorf("taken: %q", got)
	}
}

// TestQUICConnectionBound: past maxQUICConns the oldest connection is
// ended and its record handed on, so a long capture holds a bounded number.
func TestQUICConnectionBound(t *testing.T) {
	defer func(n int) { maxQUICConns = n }(maxQUICConns)
	maxQUICConns = 2
	var frames []udpFrame
	for i := range 5 {
		c := newQUICTestConn(QUICv1, fmt.Sprintf("dcid%04d", i), "s", "")
		frames = append(frames, udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(0, quicHello(false)), 1200, nil), port: uint16(40000 + i)})
	}
	var order []string
	cr := captureReader{conns: map[connKey]*captureConn{}, quic: map[connKey]*captureFlow{}, history: NewSessionHistory(0),
		fn: func(r *Record) error { order = append(order, r.ClientAddr); return nil }}
	if _, err := pcap.Read(bytes.NewReader(udpCapture(t, frames...)), pcap.Options{UDP: func(d pcap.Datagram) error {
		err := cr.datagram(d)
		if len(cr.quic) > 2 {
			t.Fatalf("%d connections followed, bound 2", len(cr.quic))
		}
		return err
	}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(order) != 3 || order[0] != "10.0.0.1:40000" {
		t.Errorf("records handed on before the end: %v, want the 3 oldest", order)
	}
	cr.closeAll()
	if len(order) != 5 {
		t.Errorf("%d records in all, want 5", len(order))
	}
}

// TestQUICHelloRetry: a HelloRetryRequest in the server's Initial, the
// second hello further along the client's CRYPTO stream, the ServerHello
// further along the server's: two records, as over TCP.
func TestQUICHelloRetry(t *testing.T) {
	c := newQUICTestConn(QUICv1, "hrrdcid1", "cs", "ss")
	ch := quicHello(false)
	hrr := testServerHello(VersionTLS13, nil, true, testExt{ExtKeyShare, []byte{0, 23}})
	recs, _ := readQUICCapture(t, udpCapture(t,
		udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(0, ch), 1200, nil)},
		udpFrame{dir: 1, data: c.initial(1, cryptoFrameBytes(0, hrr), 0, nil)},
		udpFrame{dir: 0, data: c.initial(0, cryptoFrameBytes(len(ch), ch), 1200, nil)},
		udpFrame{dir: 1, data: c.initial(1, cryptoFrameBytes(len(hrr), quicServerHello(false)), 0, nil)}))
	if len(recs) != 2 || recs[0].ServerHello == nil || !recs[0].ServerHello.HRR || recs[0].Frame != 1 ||
		recs[1].ServerHello == nil || recs[1].ServerHello.HRR || !recs[1].ServerHello.Complete || recs[1].Frame != 3 {
		t.Fatalf("records %+v", recs)
	}
}

// TestQUICCompatibleVersion: the client's Initial is v1, the server answers
// in v2 (compatible version negotiation, RFC 9368): its Initial is read
// with v2 keys from the same connection ID, and the record says so.
func TestQUICCompatibleVersion(t *testing.T) {
	v1 := newQUICTestConn(QUICv1, "compatdc", "cs", "ss")
	v2 := newQUICTestConn(QUICv2, "compatdc", "cs", "ss")
	recs, _ := readQUICCapture(t, udpCapture(t,
		udpFrame{dir: 0, data: v1.initial(0, cryptoFrameBytes(0, quicHello(true)), 1200, nil)},
		udpFrame{dir: 1, data: v2.initial(1, cryptoFrameBytes(0, quicServerHello(true)), 0, nil)}))
	if len(recs) != 1 || recs[0].ServerHello == nil || !recs[0].ServerHello.Resumed ||
		recs[0].QUIC.VersionName != "v1" || recs[0].QUIC.NegotiatedVersion != "6b3343cf" {
		t.Fatalf("records %+v, quic %+v", recs, recs[0].QUIC)
	}
}

// TestQUICParameterName: registered names (RFC 9000, 9287, 9368), the
// private ids Chromium sends named as tshark 4.0 names them in FoxIO's
// captures (google_quic_version, google_connection_options,
// google_initial_rtt; it leaves 0xff73db unknown), greased ids, and the
// rest left unknown rather than guessed.
func TestQUICParameterName(t *testing.T) {
	for _, tt := range []struct {
		id   int
		want string
	}{
		{0x01, "max_idle_timeout"},
		{0x11, "version_information"},
		{0x2ab2, "grease_quic_bit"},
		{0x3127, "google_initial_rtt"},
		{0x3128, "google_connection_options"},
		{0x4752, "google_quic_version"},
		{0xff73db, "version_information_draft"},
		{31*5 + 27, "grease"},
		{0x1234, "unknown(0x1234)"},
	} {
		if got := QUICParameterName(tt.id); got != tt.want {
			t.Errorf("QUICParameterName(%#x) = %q, want %q", tt.id, got, tt.want)
		}
	}
}
