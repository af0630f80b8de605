package dns

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzHandle sends arbitrary bytes to a running server as a UDP query,
// followed by a good query (the probe). The server must not crash, must
// answer the probe, and must answer the fuzzed bytes with a well-formed
// message with their ID: FORMERR or NOTIMP unless they are an acceptable
// query, and nothing at all when they are too short or a response.
func FuzzHandle(f *testing.F) {
	up := newUpstream(f)
	s := newTestServer(f, up, Config{RateLimit: -1}) // every input comes from 127.0.0.1
	for _, tc := range malformed(f) {
		f.Add(tc.pkt)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.intercepted.test.", dns.TypeA}, {"api.test.", dns.TypeHTTPS},
		{"example.test.", dns.TypeMX}, {bigTXT, dns.TypeTXT}, {"nope.example.test.", dns.TypeAAAA},
	} {
		f.Add(packQuery(f, 0x1234, q.name, q.qtype))
	}
	edns := new(dns.Msg).SetQuestion("www.intercepted.test.", dns.TypeAAAA).SetEdns0(4096, true)
	if b, err := edns.Pack(); err == nil {
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, pkt []byte) { answersAsItShould(t, s.Addr(), pkt, "www.intercepted.test.") })
}

// answersAsItShould sends pkt and then a probe query for probe to a
// server at addr over UDP, and fails t unless the probe is answered and
// pkt is answered as it should be: an acceptable query with an answer, a
// bad one with FORMERR or NOTIMP, and what is dropped (shorter than a
// header, a response) with nothing.
func answersAsItShould(t *testing.T, addr string, pkt []byte, probe string) {
	if len(pkt) > 60000 {
		return // past what one UDP datagram carries
	}
	// A fresh socket per input, so that late answers to earlier ones
	// cannot be mistaken for answers to this one.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var id uint16
	if len(pkt) >= 2 {
		id = binary.BigEndian.Uint16(pkt)
	}
	probeID := id ^ 0x5A5A
	if _, err := conn.Write(pkt); err != nil {
		t.Fatalf("sending: %v", err)
	}
	if _, err := conn.Write(packQuery(t, probeID, probe, dns.TypeA)); err != nil {
		t.Fatalf("sending the probe: %v", err)
	}

	dropped := len(pkt) < 12 || pkt[2]&0x80 != 0
	acceptable := !dropped && acceptableQuery(pkt)
	gotProbe, gotReply := false, false
	buf := make([]byte, 65535)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// An acceptable query is forwarded and may answer after the probe.
	for !gotProbe || (acceptable && !gotReply) {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("probe answered %v, input answered %v (acceptable %v): %v", gotProbe, gotReply, acceptable, err)
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("unparseable answer: %v", err)
		}
		switch {
		case m.Id == probeID && !gotProbe:
			gotProbe = true
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Fatalf("probe: %v", m)
			}
		case m.Id == id && !gotReply && !dropped:
			gotReply = true
			if !m.Response {
				t.Fatalf("answer without QR: %v", m)
			}
			if !acceptable && m.Rcode != dns.RcodeFormatError && m.Rcode != dns.RcodeNotImplemented {
				t.Fatalf("bad query answered %s: %v", rcodeText(m.Rcode), m)
			}
		default:
			t.Fatalf("unexpected answer (input ID %#x, probe %#x, dropped %v): %v", id, probeID, dropped, m)
		}
	}
}

// acceptableQuery says whether the server should serve pkt rather than
// reject it: well formed, parseable, a QUERY with one question.
func acceptableQuery(pkt []byte) bool {
	if checkQuery(pkt) != nil {
		return false
	}
	m := new(dns.Msg)
	if err := m.Unpack(pkt); err != nil {
		return false
	}
	return m.Opcode == dns.OpcodeQuery && len(m.Question) == 1 && len(m.Answer) <= 1 && len(m.Ns) <= 1 && len(m.Extra) <= 2
}
