package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// The proxy's addresses in tests (documentation ranges, never dialled).
var (
	testV4 = netip.MustParseAddr("203.0.113.7")
	testV6 = netip.MustParseAddr("2001:db8::7")
)

// testZone is what the test upstream knows. Names under intercepted.test
// are there too, so that a test can tell an intercepted answer from a
// forwarded one.
var testZone = []string{
	"example.test. 300 IN SOA ns.example.test. admin.example.test. 1 7200 3600 1209600 300",
	"example.test. 300 IN MX 10 mail.example.test.",
	`example.test. 300 IN TXT "v=spf1 -all"`,
	`example.test. 300 IN TXT "hello world"`,
	"www.example.test. 300 IN A 192.0.2.10",
	"www.example.test. 300 IN AAAA 2001:db8::10",
	`www.example.test. 300 IN HTTPS 1 . alpn="h3,h2" ipv4hint=192.0.2.10`,
	"alias.example.test. 300 IN CNAME www.example.test.",
	"alias.example.test. 300 IN A 192.0.2.10", // flattened: this toy server follows no CNAMEs
	"intercepted.test. 300 IN SOA ns.intercepted.test. admin.intercepted.test. 1 7200 3600 1209600 300",
	"intercepted.test. 300 IN A 198.51.100.2",
	"www.intercepted.test. 300 IN A 198.51.100.1",
	"www.intercepted.test. 300 IN AAAA 2001:db8::1",
	`www.intercepted.test. 300 IN HTTPS 1 . alpn="h3,h2" ech=AEX+DQBBpQAgACB/BZPMU0fDi0v0RWE5WzE+Bz0UUMgh3HvaLaCWuJkXAwAEAAEAAQASY2xvdWRmbGFyZS1lY2guY29tAAA=`,
	"www.intercepted.test. 300 IN MX 10 mx.intercepted.test.",
	`www.intercepted.test. 300 IN TXT "from upstream"`,
	"api.test. 300 IN A 198.51.100.3",
	`api.test. 300 IN TXT "api upstream"`,
}

// bigTXT is a name whose TXT answer (40 records) needs more than 512 bytes
// and more than 1232: over UDP it comes back truncated.
const bigTXT = "big.example.test."

// upstream is a test resolver: a miekg/dns server on loopback UDP and TCP
// answering testZone, counting the queries it gets per transport.
type upstream struct {
	addr     string
	records  map[string][]dns.RR // key: lower-case name + "/" + type
	names    map[string]bool
	udp, tcp atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{records: map[string][]dns.RR{}, names: map[string]bool{}}
	zone := append([]string(nil), testZone...)
	for i := range 40 {
		zone = append(zone, fmt.Sprintf(`%s 300 IN TXT "record %02d padding padding padding padding"`, bigTXT, i))
	}
	for _, s := range zone {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("test zone record %q: %v", s, err)
		}
		h := rr.Header()
		key := strings.ToLower(h.Name) + "/" + dns.Type(h.Rrtype).String()
		u.records[key] = append(u.records[key], rr)
		u.names[strings.ToLower(h.Name)] = true
	}
	pc, ln, err := listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: ln}} {
		ready := make(chan struct{})
		srv.Handler = u
		srv.NotifyStartedFunc = func() { close(ready) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("test upstream: %v", err)
		}
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return u
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	name := strings.ToLower(q.Name)
	m.Answer = u.records[name+"/"+dns.Type(q.Qtype).String()]
	if len(m.Answer) == 0 {
		zone := "example.test."
		if strings.HasSuffix(name, "intercepted.test.") {
			zone = "intercepted.test."
		}
		m.Ns = u.records[zone+"/SOA"]
		if !u.names[name] {
			m.Rcode = dns.RcodeNameError
		}
	}
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
		m.SetEdns0(4096, false)
	}
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		u.udp.Add(1)
		m.Truncate(size)
	} else {
		u.tcp.Add(1)
	}
	w.WriteMsg(m)
}

// ask queries upstream directly with a miekg/dns client, for comparison.
func (u *upstream) ask(t testing.TB, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	return ask(t, u.addr, network, name, qtype)
}

// newTestServer starts a Server for tests on 127.0.0.1:0 that forwards to
// up, intercepting *.intercepted.test and api.test unless cfg says
// otherwise, and closes it at the end of the test.
func newTestServer(t testing.TB, up *upstream, cfg Config) *Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if !cfg.AnswerV4.IsValid() {
		cfg.AnswerV4 = testV4
	}
	if cfg.Intercept == nil {
		cfg.Intercept = []string{"*.intercepted.test", "api.test"}
	}
	if cfg.Upstream == "" {
		cfg.Upstream = up.addr
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// ask sends one query with a miekg/dns client.
func ask(t testing.TB, addr, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("asking %s %s over %s: %v", name, dns.Type(qtype), network, err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer ID %d, query ID %d", r.Id, m.Id)
	}
	return r
}

// result is an answer reduced to what both clients can show.
type result struct {
	rcode   string
	aa, tc  bool
	answers []string // "TYPE rdata", in order
	ttls    []uint32
}

func fromMsg(r *dns.Msg) result {
	res := result{rcode: rcodeText(r.Rcode), aa: r.Authoritative, tc: r.Truncated}
	for _, rr := range r.Answer {
		res.answers = append(res.answers, dns.Type(rr.Header().Rrtype).String()+" "+strings.TrimPrefix(rr.String(), rr.Header().String()))
		res.ttls = append(res.ttls, rr.Header().Ttl)
	}
	return res
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags:([a-z ]*);`)
)

// dig asks with Debian's dig; extra arguments such as "+tcp" are passed on.
func dig(t testing.TB, addr, name, qtype string, extra ...string) result {
	t.Helper()
	path := tlstest.Need(t, "dig")
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"@" + host, "-p", port, name, qtype, "+tries=1", "+time=3"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return parseDig(t, string(out))
}

func parseDig(t testing.TB, out string) result {
	t.Helper()
	var res result
	m := digStatus.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no status in dig output:\n%s", out)
	}
	res.rcode = m[1]
	if f := digFlags.FindStringSubmatch(out); f != nil {
		for _, flag := range strings.Fields(f[1]) {
			res.aa = res.aa || flag == "aa"
			res.tc = res.tc || flag == "tc"
		}
	}
	inAnswer := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			inAnswer = true
		case inAnswer && (line == "" || strings.HasPrefix(line, ";")):
			inAnswer = false
		case inAnswer:
			// owner TTL class type rdata…
			f := strings.Fields(line)
			if len(f) < 5 {
				t.Fatalf("dig answer line %q", line)
			}
			var ttl uint32
			fmt.Sscan(f[1], &ttl)
			text := f[3] + " " + strings.Join(f[4:], " ")
			// dig and miekg/dns present some SVCB parameters differently
			// (ipv4hint quoted or not): compare in miekg/dns's form.
			if rr, err := dns.NewRR(line); err == nil {
				text = fromMsg(&dns.Msg{Answer: []dns.RR{rr}}).answers[0]
			}
			res.answers = append(res.answers, text)
			res.ttls = append(res.ttls, ttl)
		}
	}
	return res
}

// missingEvents returns the wanted events (subsets of fields) that no line
// of the JSON log has.
func missingEvents(t *testing.T, log string, want []map[string]any) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		events = append(events, ev)
	}
	var missing []map[string]any
	for _, w := range want {
		found := false
		for _, ev := range events {
			match := true
			for k, v := range w {
				match = match && ev[k] == v
			}
			found = found || match
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}
