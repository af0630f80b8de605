package dns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// BenchmarkServe measures answers per second on loopback: 8 client
// goroutines, each with its own socket, send b.N queries in all, one at a
// time each, with miekg/dns's client. The goal is at least 20,000
// queries/s for intercepted names.
//
//	go test -run='^$' -bench=Serve -benchtime=50000x ./proxy/dns
func BenchmarkServe(b *testing.B) {
	up := newUpstream(b)
	s := newTestServer(b, up, Config{RateLimit: -1}) // one client asks b.N times: no rate limit
	for _, bc := range []struct {
		name, network, qname string
		qtype                uint16
	}{
		{"intercepted-A/udp", "udp", "www.intercepted.test.", dns.TypeA},
		{"intercepted-HTTPS/udp", "udp", "www.intercepted.test.", dns.TypeHTTPS},
		{"intercepted-A/tcp", "tcp", "www.intercepted.test.", dns.TypeA},
		{"forwarded-MX/udp", "udp", "example.test.", dns.TypeMX},
		{"forwarded-A/tcp", "tcp", "www.example.test.", dns.TypeA},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			qps := load(b, s.Addr(), bc.network, bc.qname, bc.qtype, 8, b.N)
			b.ReportMetric(qps, "queries/s")
		})
	}
}

// load sends n queries in all from workers goroutines, each over one
// connection of its own, and returns the answers per second. It fails b on
// any error or wrong answer.
func load(b *testing.B, addr, network, qname string, qtype uint16, workers, n int) float64 {
	b.Helper()
	conns := make([]*dns.Conn, workers)
	for i := range conns {
		c, err := dns.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	client := &dns.Client{Net: network, Timeout: 2 * time.Second}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		count := n / workers
		if i < n%workers {
			count++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := new(dns.Msg).SetQuestion(qname, qtype)
			for range count {
				m.Id = dns.Id()
				r, _, err := client.ExchangeWithConn(m, c)
				if err != nil {
					errs <- err
					return
				}
				if r.Rcode != dns.RcodeSuccess {
					errs <- fmt.Errorf("rcode %s", rcodeText(r.Rcode))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return float64(n) / elapsed.Seconds()
}

// TestDNSPerf runs dnsperf (Debian's dnsperf) against the server for 5
// seconds per query mix and logs its figures. It loads the machine, so it
// runs only when TLSRESUME_DNSPERF=1:
//
//	TLSRESUME_DNSPERF=1 go test -run TestDNSPerf -v ./proxy/dns
//
// By hand, against a running server: dnsperf -s 127.0.0.1 -p PORT -d FILE
// -l 5, FILE holding one "name TYPE" per line.
func TestDNSPerf(t *testing.T) {
	if os.Getenv("TLSRESUME_DNSPERF") != "1" {
		t.Skip("set TLSRESUME_DNSPERF=1 to run dnsperf against the server (5 s per mix)")
	}
	dnsperf := tlstest.Need(t, "dnsperf")
	up := newUpstream(t)
	s := newTestServer(t, up, Config{RateLimit: -1}) // dnsperf is one client
	host, port, _ := strings.Cut(s.Addr(), ":")
	for _, mix := range []struct {
		name    string
		queries []string
	}{
		{"intercepted", []string{"www.intercepted.test A", "www.intercepted.test AAAA", "www.intercepted.test HTTPS", "api.test A"}},
		{"mixed", []string{"www.intercepted.test A", "www.intercepted.test HTTPS", "www.example.test A", "example.test MX", "example.test TXT", "nope.example.test A"}},
	} {
		t.Run(mix.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "queries")
			if err := os.WriteFile(file, []byte(strings.Join(mix.queries, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, dnsperf, "-s", host, "-p", port, "-d", file, "-l", "5").CombinedOutput()
			if err != nil {
				t.Fatalf("dnsperf: %v\n%s", err, out)
			}
			qps := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
			lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindSubmatch(out)
			if qps == nil || lost == nil {
				t.Fatalf("no figures in dnsperf output:\n%s", out)
			}
			t.Logf("%s: %s queries/s, %s lost", mix.name, qps[1], lost[1])
			t.Logf("dnsperf output:\n%s", out)
		})
	}
}
