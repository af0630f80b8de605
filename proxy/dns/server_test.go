package dns

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// queryTests are asked over UDP and TCP, with a miekg/dns client and with
// dig. forwarded rows are also asked of the upstream directly, and the two
// answers must be the same.
var queryTests = []struct {
	name      string
	qname     string
	qtype     uint16
	rcode     string
	answers   []string // "TYPE rdata"; for forwarded rows the upstream's answer is compared too
	forwarded bool
}{
	{name: "intercepted A", qname: "www.intercepted.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 203.0.113.7"}},
	{name: "intercepted A, mixed case", qname: "WwW.InterCepted.TEST.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 203.0.113.7"}},
	{name: "intercepted A, deeper name", qname: "a.b.intercepted.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 203.0.113.7"}},
	{name: "intercepted exact name", qname: "api.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 203.0.113.7"}},
	{name: "intercepted AAAA without AnswerV6 is empty", qname: "www.intercepted.test.", qtype: dns.TypeAAAA, rcode: "NOERROR"},
	{name: "intercepted HTTPS is empty", qname: "www.intercepted.test.", qtype: dns.TypeHTTPS, rcode: "NOERROR"},
	{name: "intercepted SVCB is empty", qname: "svc.intercepted.test.", qtype: dns.TypeSVCB, rcode: "NOERROR"},
	{name: "exact pattern does not cover names below it", qname: "_dns.api.test.", qtype: dns.TypeSVCB, rcode: "NXDOMAIN", forwarded: true},
	{name: "intercepted name, MX forwarded", qname: "www.intercepted.test.", qtype: dns.TypeMX, rcode: "NOERROR", answers: []string{"MX 10 mx.intercepted.test."}, forwarded: true},
	{name: "intercepted name, TXT forwarded", qname: "api.test.", qtype: dns.TypeTXT, rcode: "NOERROR", answers: []string{`TXT "api upstream"`}, forwarded: true},
	{name: "apex of a wildcard pattern is not intercepted", qname: "intercepted.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 198.51.100.2"}, forwarded: true},
	{name: "forwarded A", qname: "www.example.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 192.0.2.10"}, forwarded: true},
	{name: "forwarded AAAA", qname: "www.example.test.", qtype: dns.TypeAAAA, rcode: "NOERROR", answers: []string{"AAAA 2001:db8::10"}, forwarded: true},
	{name: "forwarded HTTPS unchanged", qname: "www.example.test.", qtype: dns.TypeHTTPS, rcode: "NOERROR", answers: []string{`HTTPS 1 . alpn="h3,h2" ipv4hint="192.0.2.10"`}, forwarded: true},
	{name: "forwarded MX", qname: "example.test.", qtype: dns.TypeMX, rcode: "NOERROR", answers: []string{"MX 10 mail.example.test."}, forwarded: true},
	{name: "forwarded TXT", qname: "example.test.", qtype: dns.TypeTXT, rcode: "NOERROR", answers: []string{`TXT "v=spf1 -all"`, `TXT "hello world"`}, forwarded: true},
	{name: "forwarded CNAME chain", qname: "alias.example.test.", qtype: dns.TypeA, rcode: "NOERROR", answers: []string{"A 192.0.2.10"}, forwarded: true},
	{name: "forwarded NXDOMAIN", qname: "nope.example.test.", qtype: dns.TypeA, rcode: "NXDOMAIN", forwarded: true},
	{name: "forwarded empty NOERROR", qname: "www.example.test.", qtype: dns.TypeMX, rcode: "NOERROR", forwarded: true},
}

func TestQueries(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range queryTests {
			t.Run(network+"/miekg/"+tc.name, func(t *testing.T) {
				got := fromMsg(ask(t, s.Addr(), network, tc.qname, tc.qtype))
				checkResult(t, tc.qname, got, tc.rcode, tc.answers, !tc.forwarded)
				if tc.forwarded {
					want := up.ask(t, network, tc.qname, tc.qtype)
					if w := fromMsg(want); !slices.Equal(got.answers, w.answers) || got.rcode != w.rcode || !slices.Equal(got.ttls, w.ttls) {
						t.Errorf("forwarded answer %+v, upstream's %+v", got, w)
					}
				}
			})
			t.Run(network+"/dig/"+tc.name, func(t *testing.T) {
				var extra []string
				if network == "tcp" {
					extra = append(extra, "+tcp")
				}
				got := dig(t, s.Addr(), tc.qname, dns.Type(tc.qtype).String(), extra...)
				checkResult(t, tc.qname, got, tc.rcode, tc.answers, !tc.forwarded)
			})
		}
	}
}

func checkResult(t *testing.T, qname string, got result, rcode string, answers []string, intercepted bool) {
	t.Helper()
	if got.rcode != rcode {
		t.Errorf("%s: rcode %s, want %s", qname, got.rcode, rcode)
	}
	if !slices.Equal(got.answers, answers) {
		t.Errorf("%s: answers %q, want %q", qname, got.answers, answers)
	}
	if got.aa != true { // the test upstream is authoritative too
		t.Errorf("%s: AA flag not set", qname)
	}
	for _, ttl := range got.ttls {
		if intercepted && ttl != defaultTTL {
			t.Errorf("%s: TTL %d, want %d", qname, ttl, defaultTTL)
		}
	}
}

func TestAnswerV6AndTTL(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{AnswerV6: testV6, TTL: 5, Intercept: []string{"*"}})
	tests := []struct {
		qname, qtype string
		answers      []string
	}{
		{"www.example.test.", "AAAA", []string{"AAAA 2001:db8::7"}},
		{"www.example.test.", "A", []string{"A 203.0.113.7"}},
		{"anything.at.all.", "AAAA", []string{"AAAA 2001:db8::7"}},
		{"www.example.test.", "HTTPS", nil},
	}
	for _, tc := range tests {
		t.Run(tc.qname+tc.qtype, func(t *testing.T) {
			got := fromMsg(ask(t, s.Addr(), "udp", tc.qname, dns.StringToType[tc.qtype]))
			if got.rcode != "NOERROR" || !slices.Equal(got.answers, tc.answers) || !got.aa {
				t.Errorf("got %+v, want NOERROR AA %q", got, tc.answers)
			}
			for _, ttl := range got.ttls {
				if ttl != 5 {
					t.Errorf("TTL %d, want 5", ttl)
				}
			}
		})
	}
	// MX for an intercepted name still goes upstream.
	if got := fromMsg(ask(t, s.Addr(), "tcp", "example.test.", dns.TypeMX)); !slices.Equal(got.answers, []string{"MX 10 mail.example.test."}) {
		t.Errorf("MX with intercept-all: %+v", got)
	}
}

// TestTruncation: a TXT answer too big for UDP comes back from upstream
// truncated; the server asks again over TCP, gives the UDP client what fits
// with TC set, and the client's TCP retry gets everything.
func TestTruncation(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})

	udp := ask(t, s.Addr(), "udp", bigTXT, dns.TypeTXT)
	if !udp.Truncated || len(udp.Answer) >= 40 {
		t.Errorf("UDP answer: TC %v with %d records, want TC and fewer than 40", udp.Truncated, len(udp.Answer))
	}
	if up.tcp.Load() != 1 {
		t.Errorf("upstream saw %d TCP queries, want 1 (the retry)", up.tcp.Load())
	}
	if tcp := ask(t, s.Addr(), "tcp", bigTXT, dns.TypeTXT); tcp.Truncated || len(tcp.Answer) != 40 {
		t.Errorf("TCP answer: TC %v with %d records, want 40", tcp.Truncated, len(tcp.Answer))
	}

	t.Run("dig", func(t *testing.T) {
		// dig retries over TCP by itself on TC; +ignore shows the UDP answer.
		if got := dig(t, s.Addr(), bigTXT, "TXT", "+ignore", "+bufsize=1232"); !got.tc {
			t.Errorf("dig +ignore: TC not set (%d answers)", len(got.answers))
		}
		if got := dig(t, s.Addr(), bigTXT, "TXT"); len(got.answers) != 40 {
			t.Errorf("dig: %d answers, want 40 after its TCP retry", len(got.answers))
		}
	})
}

func TestEDNS(t *testing.T) {
	up := newUpstream(t)
	s := newTestServer(t, up, Config{})
	for _, tc := range []struct {
		name    string
		version uint8
		rcode   int
	}{
		{"version 0", 0, dns.RcodeSuccess},
		{"version 1 gets BADVERS", 1, dns.RcodeBadVers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion("www.intercepted.test.", dns.TypeA)
			m.SetEdns0(1232, true)
			m.IsEdns0().SetVersion(tc.version)
			r, err := dns.Exchange(m, s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			opt := r.IsEdns0()
			if r.Rcode != tc.rcode || opt == nil || !opt.Do() || opt.UDPSize() != ednsSize {
				t.Errorf("rcode %s, OPT %v; want %s with OPT (DO, %d)", rcodeText(r.Rcode), opt, rcodeText(tc.rcode), ednsSize)
			}
		})
	}
}

func TestRecent(t *testing.T) {
	up := newUpstream(t)
	clock := tlstest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := newTestServer(t, up, Config{Now: clock.Now})
	loop := netip.MustParseAddr("127.0.0.1")

	if name, ok := s.Recent(loop, time.Minute); ok {
		t.Fatalf("Recent before any query: %q", name)
	}
	ask(t, s.Addr(), "udp", "WWW.intercepted.test.", dns.TypeA)
	ask(t, s.Addr(), "tcp", "www.example.test.", dns.TypeA) // forwarded: not remembered
	steps := []struct {
		name    string
		ip      netip.Addr
		advance time.Duration
		maxAge  time.Duration
		want    string
		ok      bool
	}{
		{"just asked", loop, 0, time.Minute, "www.intercepted.test", true},
		{"IPv4-mapped form", netip.MustParseAddr("::ffff:127.0.0.1"), 0, time.Minute, "www.intercepted.test", true},
		{"another client", netip.MustParseAddr("127.0.0.2"), 0, time.Minute, "", false},
		{"within maxAge", loop, 30 * time.Second, time.Minute, "www.intercepted.test", true},
		{"older than maxAge", loop, 31 * time.Second, time.Minute, "", false},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		name, ok := s.Recent(st.ip, st.maxAge)
		if name != st.want || ok != st.ok {
			t.Errorf("%s: Recent = %q, %v; want %q, %v", st.name, name, ok, st.want, st.ok)
		}
	}
	// A later intercepted query, over TCP, replaces the name.
	ask(t, s.Addr(), "tcp", "api.test.", dns.TypeAAAA)
	if name, _ := s.Recent(loop, time.Minute); name != "api.test" {
		t.Errorf("after asking api.test: Recent = %q", name)
	}
}

func TestAnswers(t *testing.T) {
	up := newUpstream(t)
	clock := tlstest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := newTestServer(t, up, Config{Now: clock.Now})
	ask(t, s.Addr(), "udp", "www.intercepted.test.", dns.TypeA)
	ask(t, s.Addr(), "tcp", "www.intercepted.test.", dns.TypeHTTPS)
	ask(t, s.Addr(), "udp", "example.test.", dns.TypeMX)
	ask(t, s.Addr(), "udp", "nope.example.test.", dns.TypeTXT)

	loop := netip.MustParseAddr("127.0.0.1")
	want := []Answer{
		{Time: clock.Now(), Client: loop, Name: "www.intercepted.test", Type: "A", Answer: "203.0.113.7", Intercepted: true, Rcode: "NOERROR"},
		{Time: clock.Now(), Client: loop, Name: "www.intercepted.test", Type: "HTTPS", Answer: "", Intercepted: true, Rcode: "NOERROR"},
		{Time: clock.Now(), Client: loop, Name: "example.test", Type: "MX", Answer: "10 mail.example.test.", Rcode: "NOERROR"},
		{Time: clock.Now(), Client: loop, Name: "nope.example.test", Type: "TXT", Rcode: "NXDOMAIN"},
	}
	if got := s.Answers(); !slices.Equal(got, want) {
		t.Errorf("Answers:\n got %+v\nwant %+v", got, want)
	}
}

func TestUpstreamDown(t *testing.T) {
	up := newUpstream(t)
	// A UDP port nobody answers on: bind one and keep it silent.
	pc, ln, err := listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	defer ln.Close()
	s := newTestServer(t, up, Config{Upstream: pc.LocalAddr().String(), ForwardTimeout: 200 * time.Millisecond})

	if r := ask(t, s.Addr(), "udp", "www.example.test.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", rcodeText(r.Rcode))
	}
	// Intercepted names do not need the upstream.
	if r := ask(t, s.Addr(), "udp", "www.intercepted.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Errorf("intercepted: rcode %s", rcodeText(r.Rcode))
	}
	a := s.Answers()
	if len(a) != 2 || a[0].Rcode != "SERVFAIL" || !strings.HasPrefix(a[0].Answer, "upstream ") {
		t.Errorf("Answers: %+v", a)
	}
}

func TestCloseEndsForwardsInFlight(t *testing.T) {
	pc, ln, err := listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	defer ln.Close()
	s, err := New(Config{Listen: "127.0.0.1:0", AnswerV4: testV4, Upstream: pc.LocalAddr().String(), ForwardTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		c := &dns.Client{Timeout: 5 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("www.example.test.", dns.TypeA)
		c.Exchange(m, s.Addr())
	}()
	time.Sleep(100 * time.Millisecond) // the forward is waiting on the silent upstream
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a forward in flight", d)
	}
}

func TestStartStop(t *testing.T) {
	up := newUpstream(t)
	t.Run("context ends the server", func(t *testing.T) {
		s, err := New(Config{Listen: "127.0.0.1:0", AnswerV4: testV4, Upstream: up.addr})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		addr := s.Addr()
		ask(t, addr, "tcp", "api.test.", dns.TypeA)
		cancel()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		m := new(dns.Msg).SetQuestion("api.test.", dns.TypeA)
		if _, _, err := c.Exchange(m, addr); err == nil {
			t.Error("still answering after the context ended")
		}
	})
	t.Run("address in use", func(t *testing.T) {
		s := newTestServer(t, up, Config{})
		s2, err := New(Config{Listen: s.Addr(), AnswerV4: testV4, Upstream: up.addr})
		if err != nil {
			t.Fatal(err)
		}
		if err := s2.Start(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "dns: ") {
			t.Errorf("Start on a busy address: %v", err)
		}
		if err := s2.Close(); err != nil {
			t.Errorf("Close after a failed Start: %v", err)
		}
	})
	t.Run("start twice, close twice, close unstarted", func(t *testing.T) {
		s := newTestServer(t, up, Config{})
		if err := s.Start(context.Background()); err == nil {
			t.Error("second Start succeeded")
		}
		s.Close()
		s3, _ := New(Config{Listen: "127.0.0.1:0", AnswerV4: testV4, Upstream: up.addr})
		if err := s3.Close(); err != nil {
			t.Error(err)
		}
		if err := s3.Start(context.Background()); err == nil {
			t.Error("Start after Close succeeded")
		}
	})
}

// TestForwardsBounded: past MaxForwards in flight, a query gets SERVFAIL
// at once instead of waiting.
func TestForwardsBounded(t *testing.T) {
	up := newUpstream(t)
	pc, ln, err := listen(context.Background(), "127.0.0.1:0") // a silent upstream
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	defer ln.Close()
	s := newTestServer(t, up, Config{Upstream: pc.LocalAddr().String(), MaxForwards: 1, ForwardTimeout: time.Second})

	first := make(chan *dns.Msg)
	go func() {
		c := &dns.Client{Timeout: 3 * time.Second}
		r, _, _ := c.Exchange(new(dns.Msg).SetQuestion("www.example.test.", dns.TypeA), s.Addr())
		first <- r
	}()
	time.Sleep(100 * time.Millisecond) // the first forward now holds the only slot
	start := time.Now()
	r := ask(t, s.Addr(), "udp", "example.test.", dns.TypeMX)
	if r.Rcode != dns.RcodeServerFailure || time.Since(start) > 500*time.Millisecond {
		t.Errorf("second query: %s after %v, want SERVFAIL at once", rcodeText(r.Rcode), time.Since(start))
	}
	if r := <-first; r == nil || r.Rcode != dns.RcodeServerFailure {
		t.Errorf("first query: %v, want SERVFAIL after the forward timeout", r)
	}
	var busy bool
	for _, a := range s.Answers() {
		busy = busy || strings.HasPrefix(a.Answer, "busy: ")
	}
	if !busy {
		t.Errorf("no busy answer logged: %+v", s.Answers())
	}
}

func TestLog(t *testing.T) {
	up := newUpstream(t)
	var buf tlstest.Buffer
	s := newTestServer(t, up, Config{Log: zerolog.New(&buf).Level(zerolog.DebugLevel)})
	ask(t, s.Addr(), "udp", "www.intercepted.test.", dns.TypeA)
	ask(t, s.Addr(), "tcp", "example.test.", dns.TypeMX)
	rawExchange(s.Addr(), "udp", []byte("\xbe\xef\x01\x00\x00\x01garbage"), true)

	want := []map[string]any{
		{"level": "info", "message": "answer dns query", "name": "www.intercepted.test", "type": "A", "client": "127.0.0.1", "answer": "203.0.113.7", "rcode": "NOERROR", "intercepted": true, "net": "udp"},
		{"level": "debug", "message": "answer dns query", "name": "example.test", "type": "MX", "client": "127.0.0.1", "answer": "10 mail.example.test.", "rcode": "NOERROR", "intercepted": false, "net": "tcp"},
		{"level": "debug", "message": "reject malformed dns query"},
	}
	// Each event is logged just after its answer is sent: wait for them.
	deadline := time.Now().Add(2 * time.Second)
	for {
		missing := missingEvents(t, buf.String(), want)
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log events with %v in:\n%s", missing, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
