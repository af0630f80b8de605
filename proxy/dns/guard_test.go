package dns

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// notLoopback is an Allow list that leaves out every test client.
var notLoopback = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

// TestAllow: a client outside Allow gets nothing over UDP and a closed
// connection over TCP (no answer, nothing forwarded, nothing in the answer
// log), each counted; a client inside Allow is answered as usual. It used
// to answer anyone who could reach the port: an open resolver.
func TestAllow(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{Allow: notLoopback})
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"www.intercepted.test.", dns.TypeA}, {bigTXT, dns.TypeTXT}} {
		m := new(dns.Msg).SetQuestion(q.name, q.qtype)
		if r, _, err := c.Exchange(m, s.Addr()); !isTimeout(err) {
			t.Errorf("UDP %s from outside Allow: answer %v, error %v; want no answer", q.name, r, err)
		}
	}
	if err := tcpClosedAtOnce(s.Addr()); err != nil {
		t.Errorf("TCP from outside Allow: %v", err)
	}
	waitRefusals(t, s, Refusals{NotAllowed: 3})
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Errorf("upstream got %d queries from refused clients", n)
	}
	if a := s.Answers(); len(a) != 0 {
		t.Errorf("answers logged for refused clients: %+v", a)
	}

	allowed := newTestServer(t, up, Config{Allow: append(notLoopback, netip.MustParsePrefix("127.0.0.1/32"))})
	for _, network := range []string{"udp", "tcp"} {
		if r := ask(t, allowed.Addr(), network, "www.intercepted.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("%s from inside Allow: %v", network, r)
		}
	}
	if got := allowed.Refusals(); got != (Refusals{}) {
		t.Errorf("refusals of a server that answered: %+v", got)
	}
}

// TestRateLimit: each client IP gets RateBurst answers at once, then
// RateLimit a second (the clock is the Config's, frozen here, so the
// counts are exact); what is over goes unanswered over UDP and closes the
// connection over TCP, each counted. Another client has its own bucket.
func TestRateLimit(t *testing.T) {
	up := newUpstream(t)
	clock := tlstest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newTestServer(t, up, Config{RateLimit: 10, RateBurst: 5, Now: clock.Now})

	if got := burst(t, s.Addr(), "127.0.0.1", 20); got != 5 {
		t.Errorf("20 queries at once from 127.0.0.1: %d answers, want the burst of 5", got)
	}
	if err := tcpQueryClosed(t, s.Addr()); err != nil {
		t.Errorf("TCP over the limit: %v", err)
	}
	clock.Advance(200 * time.Millisecond) // 10 a second: 2 more
	if got := burst(t, s.Addr(), "127.0.0.1", 5); got != 2 {
		t.Errorf("5 queries 200ms later: %d answers, want 2", got)
	}
	if got := burst(t, s.Addr(), "127.0.0.2", 8); got != 5 {
		t.Errorf("8 queries from 127.0.0.2: %d answers, want its own burst of 5", got)
	}
	waitRefusals(t, s, Refusals{RateLimited: 15 + 1 + 3 + 3})
}

// TestRateLimitClients: at most MaxClients buckets are kept; the client
// seen longest ago is forgotten first, and starts afresh if it comes back.
func TestRateLimitClients(t *testing.T) {
	up := newUpstream(t)
	clock := tlstest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newTestServer(t, up, Config{RateLimit: 1, RateBurst: 2, MaxClients: 2, Now: clock.Now})
	for _, step := range []struct {
		from string
		want int
	}{
		{"127.0.0.1", 2}, {"127.0.0.1", 0}, // .1 spent its burst
		{"127.0.0.2", 2}, {"127.0.0.1", 0}, // .1 is still tracked, and now seen last
		{"127.0.0.3", 2}, // .2 goes
		{"127.0.0.2", 2}, // .2 is back with a full bucket; .1 goes
		{"127.0.0.1", 2},
	} {
		if got := burst(t, s.Addr(), step.from, 3); got != step.want {
			t.Errorf("3 queries from %s: %d answers, want %d", step.from, got, step.want)
		}
		if n := s.guard.tracked(); n > 2 {
			t.Errorf("%d clients tracked, want at most MaxClients 2", n)
		}
	}
}

// TestUDPAnswerSize: a UDP answer never exceeds 1232 bytes, however large
// a buffer the query advertises: what does not fit sets TC, and the client
// asks again over TCP (where its address is proven).
func TestUDPAnswerSize(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})
	m := new(dns.Msg).SetQuestion(bigTXT, dns.TypeTXT).SetEdns0(65000, false)
	pkt, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	b, err := rawExchange(s.Addr(), "udp", pkt, true)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatal(err)
	}
	t.Logf("UDP answer: %d bytes, %d records, TC %v, to a %d-byte query", len(b), len(r.Answer), r.Truncated, len(pkt))
	if len(b) > ednsSize || !r.Truncated {
		t.Errorf("UDP answer of %d bytes (TC %v) to a %d-byte query advertising 65000: want at most %d, with TC", len(b), r.Truncated, len(pkt), ednsSize)
	}
}

// burst sends n queries for an intercepted name at once over UDP from
// local (a loopback address) and returns how many were answered within
// 500ms of the last answer.
func burst(t *testing.T, addr, local string, n int) int {
	t.Helper()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range n {
		if _, err := conn.Write(packQuery(t, uint16(i+1), "www.intercepted.test.", dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	buf := make([]byte, 2048)
	for len(seen) < n {
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		k, err := conn.Read(buf)
		if isTimeout(err) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:k]); err != nil || r.Id == 0 || int(r.Id) > n || seen[r.Id] {
			t.Fatalf("unexpected answer %v (%v)", r, err)
		}
		seen[r.Id] = true
	}
	return len(seen)
}

// tcpClosedAtOnce connects and expects the server to close the connection
// before anything is sent.
func tcpClosedAtOnce(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); isTimeout(err) {
		return errors.New("the connection stayed open")
	} else if err == nil {
		return errors.New("the server sent bytes")
	}
	return nil
}

// tcpQueryClosed sends one query over TCP and expects the connection to be
// closed without an answer.
func tcpQueryClosed(t *testing.T, addr string) error {
	b, err := rawExchange(addr, "tcp", packQuery(t, 99, "www.intercepted.test.", dns.TypeA), true)
	if err == nil {
		return errors.New("answered: " + string(b))
	}
	if isTimeout(err) {
		return errors.New("the connection stayed open without an answer")
	}
	return nil
}

// waitRefusals waits up to 2s for the server's refusals to reach want
// (UDP queries are counted when read, after the client gave up on them).
func waitRefusals(t *testing.T, s *Server, want Refusals) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for s.Refusals() != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.Refusals(); got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
