package tlstest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// StartDNS is a resolver on 127.0.0.1 for a test to point tlsresume at
// (--dns-upstream): UDP and TCP on one port, answering A and AAAA queries
// from zone (a name, without its trailing dot, to its addresses) and
// NXDOMAIN for any other name. It returns "127.0.0.1:PORT" and stops when
// t ends.
func StartDNS(t testing.TB, zone map[string][]netip.Addr) string {
	t.Helper()
	z := map[string][]netip.Addr{}
	for name, addrs := range zone {
		z[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = addrs
	}
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if try < 10 {
				continue // the UDP port's number is taken over TCP
			}
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { pc.Close(); ln.Close(); wg.Wait() })
		wg.Add(2)
		go func() { defer wg.Done(); serveDNSPackets(pc, z) }()
		go func() { defer wg.Done(); serveDNSStreams(ln, z, &wg) }()
		return pc.LocalAddr().String()
	}
}

func serveDNSPackets(pc net.PacketConn, zone map[string][]netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if ans, err := dnsAnswer(buf[:n], zone); err == nil {
			pc.WriteTo(ans, from)
		}
	}
}

func serveDNSStreams(ln net.Listener, zone map[string][]netip.Addr, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				ans, err := dnsAnswer(q, zone)
				if err != nil {
					return
				}
				c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(ans))), ans...))
			}
		}()
	}
}

// dnsAnswer answers one query from zone.
func dnsAnswer(q []byte, zone map[string][]netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil, fmt.Errorf("want one question: %v", err)
	}
	question := qs[0]
	addrs, known := zone[strings.ToLower(question.Name.String())]
	h.Response, h.Authoritative, h.RecursionAvailable = true, true, true
	if !known {
		h.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case question.Type == dnsmessage.TypeA && a.Is4():
			b.AResource(rh, dnsmessage.AResource{A: a.As4()})
		case question.Type == dnsmessage.TypeAAAA && a.Is6():
			b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	return b.Finish()
}
