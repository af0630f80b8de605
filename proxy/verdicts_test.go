package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// verdictCase drives real connections through a proxy until one of them
// is in the state a verdict code names, and returns that connection's
// record.
type verdictCase struct {
	name string
	want []wantConn // of each record run returns, in order
	run  func(t *testing.T) []*inspect.ConnRecord
}

// TestEveryVerdictCode: every verdict code of inspect.VerdictCodeDocs is
// reached by a real connection (a Go client unless said otherwise) through
// a real proxy to a real origin on 127.0.0.1, and the record says so in
// code, client and upstream. A code without a case here fails the test.
func TestEveryVerdictCode(t *testing.T) {
	reached := map[inspect.VerdictCode]bool{}
	for _, vc := range verdictCases {
		t.Run(vc.name, func(t *testing.T) {
			recs := vc.run(t)
			if len(recs) != len(vc.want) {
				t.Fatalf("%d records, want %d", len(recs), len(vc.want))
			}
			for i, r := range recs {
				got := wantConn{r.Verdict.Code, r.Verdict.Client, r.Verdict.Upstream}
				if got != vc.want[i] {
					t.Fatalf("%s: verdict %+v, want %+v: %s", r.ID, got, vc.want[i], r.Verdict.Text)
				}
				if r.Verdict.Text == "" || r.V != inspect.SchemaVersion {
					t.Errorf("%s: text %q, v %d", r.ID, r.Verdict.Text, r.V)
				}
				t.Logf("%s: %s: %s", r.ID, r.Verdict.Code, r.Verdict.Text)
				reached[got.code], reached[got.client], reached[got.upstream] = true, true, true
			}
		})
	}
	for _, d := range inspect.VerdictCodeDocs {
		if !reached[inspect.VerdictCode(d.Code)] {
			t.Errorf("no real connection reached the verdict code %s", d.Code)
		}
	}
}

var verdictCases = []verdictCase{
	{"first contact, then both resumed", []wantConn{wantFirst, wantResumed},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			first := e.next()
			e.goGet("origin.test", o.addr, cache, 0)
			return []*inspect.ConnRecord{first, e.next()}
		}},
	{"not TLS", []wantConn{{inspect.CodeNotTLS, inspect.CodeNotTLS, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			addr := startTCPServer(t, func(c net.Conn) { io.Copy(c, c) })
			e := startProxy(t, tempDir(t), nil)
			c := e.connect(addr)
			io.WriteString(c, "SSH-2.0-test\r\n")
			io.ReadFull(c, make([]byte, 14))
			c.Close()
			return one(e.next())
		}},
	{"truncated hello", []wantConn{{inspect.CodeClientNoHello, inspect.CodeClientNoHello, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			c := e.connect(o.addr)
			c.Write([]byte{22, 3, 1, 0x02, 0x00, 1, 0, 1}) // a record header promising 512 bytes, then 3
			c.Close()
			return one(e.next())
		}},
	{"offered nothing after a ticket", []wantConn{{inspect.CodeClientOfferedNothing, inspect.CodeClientOfferedNothing, inspect.CodeUpstreamResumed}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			// As URLSession in seed 000: psk_key_exchange_modes and an empty
			// session_ticket in every hello, tickets received, none offered.
			e.goGet("origin.test", o.addr, forgetfulCache{}, 0)
			if r := e.next(); r.ClientLeg.TicketsSent == 0 {
				t.Fatalf("%s: no ticket issued", r.ID)
			}
			e.goGet("origin.test", o.addr, forgetfulCache{}, 0)
			r := e.next()
			if !strings.Contains(r.Verdict.Text, "on c1") {
				t.Errorf("the verdict does not name the connection that got the ticket: %s", r.Verdict.Text)
			}
			return one(r)
		}},
	{"session ID only", []wantConn{{inspect.CodeClientSessionIDOnly, inspect.CodeClientSessionIDOnly, inspect.CodeUpstreamFirstContact}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
			e := startProxy(t, tempDir(t), func(c *Config) { c.SessionIDClients = "intercept" })
			_, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", SessionTicketsDisabled: true, MaxVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			return one(e.next())
		}},
	{"passed through, the client rejects the origin's certificate", []wantConn{{inspect.CodePassthroughRejectedCert, inspect.CodePassthroughRejectedCert, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			// A TLS 1.2 client without tickets is passed through (it resumes
			// only by session ID); trusting only tlsresume's CA, it rejects
			// the origin's own certificate with a plaintext alert.
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
			e := startProxy(t, tempDir(t), nil)
			if _, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", SessionTicketsDisabled: true, MaxVersion: tls.VersionTLS12}); err == nil {
				t.Fatal("the client trusted the origin's certificate")
			}
			r := e.next()
			if r.ClientAlert != "bad_certificate" || !strings.Contains(r.Verdict.Fix, "--session-id-clients intercept") {
				t.Errorf("%s: client_alert %q, fix %q", r.ID, r.ClientAlert, r.Verdict.Fix)
			}
			return one(r)
		}},
	{"another server's ticket", []wantConn{{inspect.CodeClientTicketNotOurs, inspect.CodeClientTicketNotOurs, inspect.CodeUpstreamFirstContact}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			first := startProxy(t, tempDir(t), nil)
			second := startProxy(t, tempDir(t), nil) // other ticket keys
			cache := tls.NewLRUClientSessionCache(8)
			first.goGet("origin.test", o.addr, cache, 0)
			first.next()
			// The client trusts both proxies' CAs and offers the first one's ticket to the second.
			pool := first.caPool()
			pool.AddCert(second.ca.Cert)
			if _, err := second.goDial(o.addr, &tls.Config{ServerName: "origin.test", RootCAs: pool, ClientSessionCache: cache}); err != nil {
				t.Fatal(err)
			}
			return one(second.next())
		}},
	{"ticket older than 7 days", []wantConn{{inspect.CodeClientTicketExpired, inspect.CodeClientTicketExpired, inspect.CodeUpstreamCacheExpired}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			clock := &testClock{}
			e := startProxy(t, tempDir(t), func(c *Config) { c.Now = clock.now })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			// The client, on the real clock, still offers its ticket (its
			// lifetime runs from when it arrived); tlsresume is 8 days on.
			clock.advance(8 * 24 * time.Hour)
			if resumed, _ := e.goGet("origin.test", o.addr, cache, 0); resumed {
				t.Error("the client resumed with a ticket older than 7 days")
			}
			return one(e.next())
		}},
	{"ticket refused: the cipher's hash differs (openssl)", []wantConn{{inspect.CodeClientTicketRefused, inspect.CodeClientTicketRefused, inspect.CodeUpstreamResumed}},
		func(t *testing.T) []*inspect.ConnRecord {
			openssl := tlstest.Need(t, "openssl")
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			sess := filepath.Join(t.TempDir(), "sess.pem")
			// OpenSSL offers a SHA-256 session's PSK while offering only a
			// SHA-384 suite; crypto/tls decrypts the ticket and skips the PSK
			// (handshake_server_tls13.go, checkForResumption).
			for i, args := range [][]string{
				{"-ciphersuites", "TLS_AES_128_GCM_SHA256", "-sess_out", sess},
				{"-ciphersuites", "TLS_AES_256_GCM_SHA384", "-sess_in", sess},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, _, err := runTool(ctx, nil, httpGet, openssl, append([]string{"s_client", "-proxy", e.addr, "-connect", o.addr,
					"-servername", "origin.test", "-CAfile", e.ca.CertFile(), "-verify_return_error", "-tls1_3", "-ign_eof"}, args...)...)
				cancel()
				if err != nil || !strings.Contains(out, "hello from origin") {
					t.Fatalf("s_client %d: %v\n%s", i+1, err, tlstest.Tail(out, 600))
				}
				if i == 0 {
					e.next()
				}
			}
			r := e.next()
			if r.ClientLeg.Ticket != inspect.TicketOurs || r.ClientLeg.TicketFrom != "c1" {
				t.Errorf("client leg %+v: the ticket was ours, from c1", r.ClientLeg)
			}
			return one(r)
		}},
	{"resumption refused on purpose", []wantConn{{inspect.CodeClientResumptionRefused, inspect.CodeClientResumptionRefused, inspect.CodeUpstreamResumed}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), func(c *Config) { c.ClientResumption = []ResumptionRule{{Refuse: true}} })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			first := e.next()
			if resumed, _ := e.goGet("origin.test", o.addr, cache, 0); resumed {
				t.Error("the client resumed although tlsresume refuses every ticket")
			}
			r := e.next()
			l := r.ClientLeg
			if l.Ticket != inspect.TicketRefused || l.RefusedBy != "--client-resumption refuse" || l.TicketFrom != first.ID || l.TicketKeyID == "" {
				t.Errorf("client leg %+v: a ticket of c1's, under a named key, refused by the rule", l)
			}
			return one(r)
		}},
	{"ticket past an expire-after rule for its host", []wantConn{wantResumed, {inspect.CodeClientTicketAgedOut, inspect.CodeClientTicketAgedOut, inspect.CodeUpstreamResumed}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			clock := &testClock{}
			up, err := upstream.NewCache(upstream.CacheConfig{TTL: time.Hour, Now: clock.now})
			if err != nil {
				t.Fatal(err)
			}
			rules, err := ParseResumptionRules("refuse,ORIGIN.test=expire-after=10m")
			if err != nil {
				t.Fatal(err)
			}
			e := startProxy(t, tempDir(t), func(c *Config) { c.ClientResumption, c.Now, c.Upstream = rules, clock.now, up })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			clock.advance(9 * time.Minute) // within the host's rule: resumes (the catch-all would refuse)
			e.goGet("origin.test", o.addr, cache, 0)
			within := e.next()
			clock.advance(2 * time.Minute) // c2's ticket is 2 minutes old, c1's 11: the client offers its newest
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			clock.advance(11 * time.Minute)
			e.goGet("origin.test", o.addr, cache, 0)
			r := e.next()
			if r.ClientLeg.RefusedBy != "--client-resumption origin.test=expire-after=10m0s" {
				t.Errorf("refused_by %q", r.ClientLeg.RefusedBy)
			}
			return []*inspect.ConnRecord{within, r}
		}},
	{"client tickets off", []wantConn{{inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamFirstContact}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), func(c *Config) { c.ClientTickets = "off" })
			e.goGet("origin.test", o.addr, tls.NewLRUClientSessionCache(8), 0)
			return one(e.next())
		}},
	{"client rejects the certificate", []wantConn{{inspect.CodeClientRejectedCert, inspect.CodeClientRejectedCert, inspect.CodeUpstreamFirstContact}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			if _, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", RootCAs: originPool}); err == nil {
				t.Fatal("handshake succeeded without trusting the CA")
			}
			return one(e.next())
		}},
	{"client wants TLS 1.3 from a TLS 1.2 origin", []wantConn{{inspect.CodeClientHandshakeFailed, inspect.CodeClientHandshakeFailed, inspect.CodeUpstreamFirstContact}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 })
			// Intercepted: a TLS 1.3-only hello has no session_ticket
			// extension, and would be passed through as a session-ID client.
			e := startProxy(t, tempDir(t), func(c *Config) { c.SessionIDClients = "intercept" })
			if _, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", MinVersion: tls.VersionTLS13}); err == nil {
				t.Fatal("a TLS 1.3-only client completed a handshake with a TLS 1.2 mirror")
			}
			return one(e.next())
		}},
	{"origin at a new address of its name", []wantConn{wantFirst, {inspect.CodeUpstreamNewAddress, inspect.CodeClientResumed, inspect.CodeUpstreamNewAddress}},
		func(t *testing.T) []*inspect.ConnRecord {
			var originCfg *tls.Config
			o := startOrigin(t, func(c *tls.Config) { originCfg = c })
			_, port, _ := net.SplitHostPort(o.addr)
			ln, err := tls.Listen("tcp", "127.0.0.2:"+port, originCfg)
			if err != nil {
				t.Skipf("the origin's port is taken on 127.0.0.2: %v", err)
			}
			go o.srv.Serve(ln)
			var answer atomic.Pointer[netip.Addr]
			a := netip.MustParseAddr("127.0.0.1")
			answer.Store(&a)
			dnsAddr := startNameServer(t, "multi.test.", func() netip.Addr { return *answer.Load() })
			e := startProxy(t, tempDir(t), func(c *Config) { c.Resolver = resolverAt(dnsAddr) })
			target := "multi.test:" + port
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", target, cache, 0)
			first := e.next()
			b := netip.MustParseAddr("127.0.0.2")
			answer.Store(&b)
			e.goGet("origin.test", target, cache, 0)
			r := e.next()
			if r.UpstreamLeg.RemoteAddr != "127.0.0.2:"+port || r.UpstreamLeg.Addr != target {
				t.Errorf("upstream leg addr %q remote_addr %q, want %s at 127.0.0.2:%s", r.UpstreamLeg.Addr, r.UpstreamLeg.RemoteAddr, target, port)
			}
			return []*inspect.ConnRecord{first, r}
		}},
	{"another connection to the origin is still open", []wantConn{{inspect.CodeClientFirstContact, inspect.CodeClientFirstContact, inspect.CodeUpstreamTicketPending}},
		func(t *testing.T) []*inspect.ConnRecord {
			// The origin issues no tickets, so nothing is cached while the
			// first connection stays open.
			o := startOrigin(t, func(c *tls.Config) { c.SessionTicketsDisabled = true })
			e := startProxy(t, tempDir(t), nil)
			held, err := e.goDial(o.addr, &tls.Config{ServerName: "origin.test", NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			e.goGet("origin.test", o.addr, nil, 0)
			r := e.next()
			held.Close()
			e.next()
			return one(r)
		}},
	{"upstream cache flushed", []wantConn{{inspect.CodeUpstreamCacheMiss, inspect.CodeClientResumed, inspect.CodeUpstreamCacheMiss}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), nil)
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			e.srv.cfg.Upstream.Flush()
			e.goGet("origin.test", o.addr, cache, 0)
			return one(e.next())
		}},
	{"upstream session past the TTL", []wantConn{{inspect.CodeUpstreamCacheExpired, inspect.CodeClientResumed, inspect.CodeUpstreamCacheExpired}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			up, err := upstream.NewCache(upstream.CacheConfig{TTL: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			e := startProxy(t, tempDir(t), func(c *Config) { c.Upstream = up })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			time.Sleep(20 * time.Millisecond)
			e.goGet("origin.test", o.addr, cache, 0)
			return one(e.next())
		}},
	{"origin certificate expired since", []wantConn{{inspect.CodeUpstreamCacheDropped, inspect.CodeClientResumed, inspect.CodeUpstreamCacheDropped}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			clock := &testClock{}
			up, err := upstream.NewCache(upstream.CacheConfig{TTL: 72 * time.Hour, Now: clock.now})
			if err != nil {
				t.Fatal(err)
			}
			e := startProxy(t, tempDir(t), func(c *Config) { c.Now, c.Upstream = clock.now, up })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			// The origin's certificate is valid for 24 hours: crypto/tls
			// deletes a cached session whose certificate has expired by its
			// clock (handshake_client.go, loadSession).
			clock.advance(25 * time.Hour)
			e.goGet("origin.test", o.addr, cache, 0)
			return one(e.next())
		}},
	{"upstream tickets off", []wantConn{{inspect.CodeUpstreamCacheOff, inspect.CodeClientResumed, inspect.CodeUpstreamCacheOff}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			up, err := upstream.NewCache(upstream.CacheConfig{Disabled: true})
			if err != nil {
				t.Fatal(err)
			}
			e := startProxy(t, tempDir(t), func(c *Config) { c.Upstream = up })
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			e.goGet("origin.test", o.addr, cache, 0)
			return one(e.next())
		}},
	{"origin issues no tickets", []wantConn{{inspect.CodeClientTicketsDisabled, inspect.CodeClientTicketsDisabled, inspect.CodeUpstreamNoTicket}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12; c.SessionTicketsDisabled = true })
			e := startProxy(t, tempDir(t), nil)
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			e.goGet("origin.test", o.addr, cache, 0)
			// The client leg mirrors the origin, so it issues no tickets
			// either: the code is the client leg's, the upstream's says why.
			return one(e.next())
		}},
	{"origin refuses its own old ticket", []wantConn{{inspect.CodeUpstreamTicketRefused, inspect.CodeClientResumed, inspect.CodeUpstreamTicketRefused}},
		func(t *testing.T) []*inspect.ConnRecord {
			var originCfg *tls.Config
			o := startOrigin(t, func(c *tls.Config) { originCfg = c })
			e := startProxy(t, tempDir(t), nil)
			cache := tls.NewLRUClientSessionCache(8)
			e.goGet("origin.test", o.addr, cache, 0)
			e.next()
			var key [32]byte
			rand.Read(key[:])
			originCfg.SetSessionTicketKeys([][32]byte{key}) // as a server restart or rotation does
			e.goGet("origin.test", o.addr, cache, 0)
			return one(e.next())
		}},
	{"--upstream-reuse pool: the second connection rides the first's upstream connection",
		[]wantConn{wantFirst, {inspect.CodeUpstreamReused, inspect.CodeClientResumed, inspect.CodeUpstreamReused}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamReuse = ReusePool })
			cache := tls.NewLRUClientSessionCache(8)
			poolGet(t, e, o.addr, cache, "http/1.1")
			first := e.next()
			poolGet(t, e, o.addr, cache, "http/1.1")
			return []*inspect.ConnRecord{first, e.next()}
		}},
	// The client is told: a 502 page naming the failure and the verdict.
	{"origin unreachable", []wantConn{{inspect.CodeUpstreamFailed, inspect.CodeClientFirstContact, inspect.CodeUpstreamFailed}},
		func(t *testing.T) []*inspect.ConnRecord {
			e := startProxy(t, tempDir(t), nil)
			status, body := e.failPage(closedPort(t), &tls.Config{ServerName: "origin.test"})
			if status != http.StatusBadGateway || !strings.Contains(body, "connection refused") || !strings.Contains(body, "verdict: upstream_failed") {
				t.Errorf("failure page %d %q", status, body)
			}
			return one(e.next())
		}},
	{"passed through, then resumed by the real server", []wantConn{
		{inspect.CodePassthroughNotResumed, inspect.CodePassthroughNotResumed, inspect.CodeUpstreamNotAttempted},
		{inspect.CodePassthroughResumed, inspect.CodePassthroughResumed, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			o := startOrigin(t, nil)
			e := startProxy(t, tempDir(t), func(c *Config) { c.Passthrough = []string{"origin.test"} })
			cfg := &tls.Config{ServerName: "origin.test", RootCAs: originPool, ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			for range 2 {
				if _, err := e.goDial(o.addr, cfg); err != nil {
					t.Fatal(err)
				}
			}
			// A passed-through connection ends when both sides have closed:
			// the two may end in either order.
			recs := []*inspect.ConnRecord{e.next(), e.next()}
			slices.SortFunc(recs, func(a, b *inspect.ConnRecord) int { return strings.Compare(a.ID, b.ID) })
			return recs
		}},
	{"passed through to a server that never answers", []wantConn{{inspect.CodePassthroughUnknown, inspect.CodePassthroughUnknown, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			addr := startTCPServer(t, func(c net.Conn) { c.Read(make([]byte, 1024)) }) // reads the hello, then hangs up
			e := startProxy(t, tempDir(t), func(c *Config) { c.Passthrough = []string{"*"} })
			if _, err := e.goDial(addr, &tls.Config{ServerName: "silent.test"}); err == nil {
				t.Fatal("handshake succeeded with a silent server")
			}
			return one(e.next())
		}},
	{"QUIC blocked (--quic block)", []wantConn{{inspect.CodeQUICBlocked, inspect.CodeQUICBlocked, inspect.CodeUpstreamNotAttempted}},
		func(t *testing.T) []*inspect.ConnRecord {
			e := startProxy(t, tempDir(t), func(c *Config) { c.QUIC = QUICBlock })
			f := e.quicFlow(t, netip.MustParseAddrPort("127.0.0.1:443"))
			if _, err := f.dial(300 * time.Millisecond); err == nil {
				t.Fatal("a QUIC handshake went through --quic block")
			}
			f.end()
			return one(e.next())
		}},
}

func one(r *inspect.ConnRecord) []*inspect.ConnRecord { return []*inspect.ConnRecord{r} }

// goDial makes one TLS connection through the proxy to target with cfg
// (RootCAs defaults to the proxy's CA), sends one request when the
// handshake succeeds, and reads the answer. The connection is left open
// when the caller keeps it; a handshake error is returned.
func (e *testEnv) goDial(target string, cfg *tls.Config) (*tls.Conn, error) {
	e.t.Helper()
	cfg = cfg.Clone()
	if cfg.RootCAs == nil {
		cfg.RootCAs = e.caPool()
	}
	raw := e.connect(target)
	tc := tls.Client(raw, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		tc.Close()
		return nil, err
	}
	if cfg.NextProtos != nil {
		return tc, nil // held open by the caller, idle
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", cfg.ServerName)
	io.ReadAll(tc)
	tc.Close()
	return tc, nil
}

// failPage fetches / through the proxy from an origin tlsresume cannot
// use, and returns what tlsresume answered instead: the status and body.
func (e *testEnv) failPage(target string, cfg *tls.Config) (int, string) {
	e.t.Helper()
	cfg = cfg.Clone()
	cfg.RootCAs = e.caPool()
	tc := tls.Client(e.connect(target), cfg)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		e.t.Fatalf("no handshake for the failure page: %v", err)
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", cfg.ServerName)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		e.t.Fatalf("no failure page: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// forgetfulCache is a client session cache that takes every session and
// never gives one back: the client asks for tickets and never offers them.
type forgetfulCache struct{}

func (forgetfulCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (forgetfulCache) Put(string, *tls.ClientSessionState)        {}

// testClock is a clock that can be moved forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// startTCPServer serves each connection to 127.0.0.1 with handle.
func startTCPServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// closedPort is a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startNameServer answers A queries for name with answer() on a UDP port
// of 127.0.0.1, and every other query with no records.
func startNameServer(t *testing.T, name string, answer func() netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if reply, err := dnsReply(buf[:n], name, answer()); err == nil {
				pc.WriteTo(reply, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func dnsReply(query []byte, name string, a netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), name) {
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a.As4()})
	}
	return b.Finish()
}

// resolverAt is a resolver that asks only the name server at addr.
func resolverAt(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}
