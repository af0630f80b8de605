//go:build linux

package proxy

import (
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	tdns "github.com/tlsresume/tlsresume/proxy/dns"
)

// The TestNetns* tests run tlsresume for real between network namespaces
// they create (newNetnsTopo): real curl, openssl and dig in a client
// namespace whose gateway is this process, origins in an origin namespace,
// iptables REDIRECT or TPROXY for transparent mode, tlsresume's DNS server for
// DNS-redirect mode. They need root, ip and iptables; without them they
// skip, and under TLSRESUME_REQUIRE_CLIENTS=1 they fail.

// TestNetnsTransparent: curl and openssl s_client in the client namespace
// connect to the origins' own IPs; iptables REDIRECT hands the connections
// to tlsresume's transparent listener, which finds the original destination
// (SO_ORIGINAL_DST), records it and resumes on both legs the second time.
func TestNetnsTransparent(t *testing.T) {
	e := newNSEnv(t)
	for _, tt := range []struct {
		name   string
		origin netip.Addr
		h2     bool
	}{
		{"curl/ipv4/openssl", nsOrigin4, false},
		{"curl/ipv6/openssl", nsOrigin6, false},
		{"curl/ipv4/go", nsOriginB4, false},
		{"curl/ipv6/go", nsOriginB6, false},
		{"curl/ipv4/go/h2", nsOriginB4, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := e.transparentProxy(t, nil)
			e.curlTwice(t, p, tt.origin, tt.h2)
		})
	}
	for _, tt := range []struct {
		name    string
		origin  netip.Addr
		flag    string
		version string          // the client leg's
		attempt inspect.Attempt // what the second hello offers
	}{
		{"s_client/tls1.3/ipv4", nsOrigin4, "-tls1_3", "1.3", "psk"},
		{"s_client/tls1.2/ipv4", nsOrigin4, "-tls1_2", "1.2", "ticket"},
		{"s_client/tls1.3/ipv6", nsOrigin6, "-tls1_3", "1.3", "psk"},
		{"s_client/tls1.2/ipv6/go", nsOriginB6, "-tls1_2", "1.2", "ticket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := e.transparentProxy(t, nil)
			e.sClientTwice(t, p, tt.origin, tt.flag, tt.version, tt.attempt)
		})
	}
}

// TestNetnsTransparentHandshakeOnly: a TLS 1.3 client that closes right
// after its handshake (a probe, a Happy Eyeballs loser, `s_client
// </dev/null`) must not teach tlsresume that the origin issues no tickets:
// TLS 1.3 tickets come after the handshake (RFC 8446 §4.6.1) and crypto/tls
// reads them only when the connection is read, which an HTTP tunnel with
// no request never does. The next client must still be issued tickets.
func TestNetnsTransparentHandshakeOnly(t *testing.T) {
	e := newNSEnv(t)
	p, _, _ := e.transparentProxy(t, nil)
	dst := netip.AddrPortFrom(nsOriginB4, 443) // the Go origin: it issues a TLS 1.3 ticket on every full handshake
	out, _, err := e.n.run(e.ctx, e.n.client, "", e.openssl, "s_client", "-connect", dst.String(), "-servername", "origin.test",
		"-alpn", "http/1.1", "-CAfile", p.caFile, "-verify_return_error")
	if err != nil || !strings.Contains(out, "ALPN protocol: http/1.1") {
		t.Fatalf("handshake-only s_client: %v: %s", err, tlstest.Tail(out, 400))
	}
	r := p.take(1)[0]
	t.Logf("record 1 (handshake only): %s", nsBrief(r))
	dir := t.TempDir()
	pages := []string{filepath.Join(dir, "1"), filepath.Join(dir, "2")}
	url := "https://origin.test/"
	if _, _, err := e.n.run(e.ctx, e.n.client, "", e.curl, "-sS", "--noproxy", "*", "--max-time", "10", "--http1.1",
		"--cacert", p.caFile, "--resolve", "origin.test:443:"+dst.Addr().String(), "-H", "Connection: close",
		"-o", pages[0], "-o", pages[1], url, url); err != nil {
		t.Fatalf("%v; records: %s", err, p.pendingBrief())
	}
	for i, r := range p.take(2) {
		t.Logf("record %d (curl): %s", i+2, nsBrief(r))
		checkIntercepted(t, r, dst, nsClient4, "origin.test")
		if !r.Mirrored.Tickets || r.Verdict.Upstream == inspect.CodeUpstreamNoTicket || r.Verdict.Client == inspect.CodeClientTicketsDisabled {
			t.Errorf("connection %d: mirrored.tickets=%v, verdict %s/%s %q: the origin does issue tickets (it issued them to connection 1, which tlsresume never read)",
				i+2, r.Mirrored.Tickets, r.Verdict.Client, r.Verdict.Upstream, r.Verdict.Text)
		}
		if i == 1 && r.Verdict.Code != inspect.CodeBothResumed {
			t.Errorf("connection 3: verdict %s, want %s", r.Verdict.Code, inspect.CodeBothResumed)
		}
	}
}

// TestNetnsTransparentEdges: a client that reaches the transparent listener
// without being redirected is refused with a recorded reason, and a
// redirected client that sends no SNI is still served by IP: the leaf
// carries the origin's IP and the upstream leg verifies the origin's IP SAN.
func TestNetnsTransparentEdges(t *testing.T) {
	e := newNSEnv(t)
	p, port4, port6 := e.transparentProxy(t, nil)
	t.Run("not_redirected", func(t *testing.T) {
		for _, r := range e.notRedirected(t, p, port4, port6) {
			// Nothing was read or tunnelled: the verdict must not say so.
			if strings.Contains(r.Verdict.Text, "tunnelled") || r.Verdict.Code == inspect.CodeNotTLS {
				t.Errorf("%s: verdict %s %q for a connection refused before its first byte was read (error %q)",
					r.ClientAddr, r.Verdict.Code, r.Verdict.Text, r.Error)
			}
		}
	})
	t.Run("no_sni", func(t *testing.T) {
		for _, origin := range []netip.Addr{nsOrigin4, nsOrigin6} {
			dst := netip.AddrPortFrom(origin, 443)
			client := map[bool]netip.Addr{false: nsClient4, true: nsClient6}[origin.Is6()]
			// -verify_ip: the leaf tlsresume shows must carry the IP the
			// client dialled (RFC 6066 §3: no IP literals in server_name).
			sc := e.sClient(t, "-connect", dst.String(), "-noservername", "-CAfile", p.caFile,
				"-verify_return_error", "-verify_ip", origin.String())
			r := p.take(1)[0]
			t.Logf("record: %s", nsBrief(r))
			checkIntercepted(t, r, dst, client, "")
			if !strings.Contains(sc.out, "Verification: OK") {
				t.Errorf("s_client did not verify tlsresume's leaf for %s: %s", origin, tlstest.Tail(sc.out, 400))
			}
			if r.Mirrored == nil || !slices.Contains(r.Mirrored.Names, origin.String()) {
				t.Errorf("leaf names %v lack %s", r.Mirrored, origin)
			}
			if r.UpstreamLeg.SNI != "" || !r.UpstreamLeg.Verified {
				t.Errorf("upstream sni %q verified %v: want no SNI, verified against the IP SAN", r.UpstreamLeg.SNI, r.UpstreamLeg.Verified)
			}
			if !strings.Contains(sc.page, "s_server") {
				t.Errorf("no page from the origin: %q", tlstest.Tail(sc.out, 300))
			}
		}
	})
}

// TestNetnsTransparentBadInput: whatever a redirected client sends, its
// connection is tunnelled or refused with a record, and tlsresume goes on.
func TestNetnsTransparentBadInput(t *testing.T) {
	e := newNSEnv(t)
	p, _, _ := e.transparentProxy(t, func(c *Config) { c.PeekTimeout = time.Second })
	dst := netip.AddrPortFrom(nsOriginB4, 443) // the Go origin: it answers plain HTTP with a 400
	noise := make([]byte, 2048)
	rand.Read(noise)
	noise[0] = 0 // not a TLS record type
	for _, tt := range []struct {
		name      string
		send      []byte
		closeSend bool
		tunnelled bool   // relayed to the original destination
		reply     string // expected in what comes back
		errText   string // expected in the record's error
	}{
		{"plain_http", []byte("GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n"), false, true, "HTTP request to an HTTPS server", "not TLS"},
		{"random_bytes", noise, true, true, "", "not TLS"},
		{"truncated_record", []byte{22, 3, 1, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3}, true, false, "", "ClientHello"},
		{"bad_hello_body", []byte{22, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef}, true, false, "", ""},
		{"huge_record_length", []byte{22, 3, 1, 0xff, 0xff, 1, 0xff, 0xff, 0xfb}, true, false, "", ""},
		{"nothing_then_close", nil, true, false, "", ""},
		{"silent", nil, false, false, "", "timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.n.clientDial.Dial("tcp", dst.String())
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(tt.send)
			if tt.closeSend {
				c.(*net.TCPConn).CloseWrite()
			}
			got, _ := io.ReadAll(c)
			c.Close() // as a real client does at EOF; tlsresume otherwise waits HalfCloseTimeout for it
			r := p.take(1)[0]
			t.Logf("record: %s", nsBrief(r))
			if !strings.Contains(string(got), tt.reply) {
				t.Errorf("got back %q, want %q", tlstest.Tail(string(got), 200), tt.reply)
			}
			if r.Source != "transparent" || r.ServerAddr != dst.String() || r.ClientHello != nil || r.Error == "" ||
				!strings.Contains(r.Error, tt.errText) {
				t.Errorf("record source %q server_addr %q error %q, want transparent %s with an error about %q", r.Source, r.ServerAddr, r.Error, dst, tt.errText)
			}
			switch {
			case tt.tunnelled && (r.Verdict.Code != inspect.CodeNotTLS || r.BytesUp != int64(len(tt.send))):
				t.Errorf("verdict %s %q, bytes_up %d: want not_tls, all %d bytes tunnelled", r.Verdict.Code, r.Verdict.Text, r.BytesUp, len(tt.send))
			case !tt.tunnelled && r.Verdict.Code == inspect.CodeNotTLS:
				// Nothing was relayed: tlsresume closed the connection.
				t.Errorf("verdict %s %q, but nothing was tunnelled: the connection was closed with error %q", r.Verdict.Code, r.Verdict.Text, r.Error)
			}
		})
	}
	// tlsresume is still there and intercepting.
	sc := e.sClient(t, "-connect", dst.String(), "-servername", "origin.test", "-CAfile", p.caFile, "-verify_return_error")
	if r := p.take(1)[0]; r.ClientLeg == nil || r.ClientLeg.Error != "" || !strings.Contains(sc.page, "hello from go origin") {
		t.Errorf("after bad input: %s / %q", nsJSON(r), tlstest.Tail(sc.out, 300))
	}
}

// TestNetnsDNS: DNS-redirect mode end to end. The client namespace's
// resolv.conf names tlsresume's DNS server, which answers origin.test with
// tlsresume's own address and forwards the rest (here an MX) unchanged to
// an upstream resolver; curl then fetches https://origin.test/ by name
// through the SNI listener (and http:// through the Host listener), and
// tlsresume resolves the real origin through that upstream, not itself.
func TestNetnsDNS(t *testing.T) {
	e := newNSEnv(t)
	dig := tlstest.Need(t, "dig")
	upstream := startNSResolver(t)
	dnsSrv := e.startDNS(t, upstream)
	p := newNSProxy(t, e.files, func(c *Config) {
		c.Resolver = tdns.Resolver(dnsSrv.Upstream())
		c.RecentName = func(ip netip.Addr) (string, bool) { return dnsSrv.Recent(ip, 30*time.Second) }
	})
	p.listen("sni", netip.AddrPortFrom(nsGW4, 443).String())
	p.listen("http", netip.AddrPortFrom(nsGW4, 80).String())
	e.n.resolvConf(e.n.client, "nameserver "+nsGW4.String()+"\n")

	t.Run("dig", func(t *testing.T) {
		for _, tt := range []struct{ qtype, want string }{
			{"A", "origin.test. 60 IN A " + nsGW4.String()}, // intercepted: tlsresume's address
			{"AAAA", ""},      // no AnswerV6: empty, so clients use IPv4
			{"MX", nsZone[1]}, // forwarded unchanged, TTL included
		} {
			out, _, err := e.n.run(e.ctx, e.n.client, "", dig, "+time=2", "+tries=1", "+noall", "+answer", "origin.test", tt.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(strings.Fields(out), " "); got != tt.want {
				t.Errorf("dig origin.test %s in the client namespace: %q, want %q", tt.qtype, got, tt.want)
			}
		}
		// The questions came from the client namespace, through its resolv.conf.
		var from []string
		for _, a := range dnsSrv.Answers() {
			from = append(from, a.Client.String()+" "+a.Name+" "+a.Type)
		}
		if !slices.Contains(from, nsClient4.String()+" origin.test MX") {
			t.Errorf("tlsresume's DNS server did not answer the client namespace's MX query: %v", from)
		}
	})
	t.Run("curl_https_by_name", func(t *testing.T) {
		dir := t.TempDir()
		pages := []string{filepath.Join(dir, "1"), filepath.Join(dir, "2")}
		url := "https://origin.test/"
		if _, _, err := e.n.run(e.ctx, e.n.client, "", e.curl, "-sS", "--noproxy", "*", "--max-time", "10", "--http1.1",
			"--cacert", p.caFile, "-H", "Connection: close", "-o", pages[0], "-o", pages[1], url, url); err != nil {
			t.Fatalf("%v; records: %s", err, p.pendingBrief())
		}
		for i, r := range p.take(2) {
			t.Logf("record %d: %s", i+1, nsBrief(r))
			ca, _ := netip.ParseAddrPort(r.ClientAddr)
			if r.Source != "sni" || r.SNI != "origin.test" || r.Target != "origin.test:443" || r.ServerAddr != "origin.test:443" || ca.Addr() != nsClient4 {
				t.Errorf("connection %d: source %q sni %q target %q server_addr %q client %q", i+1, r.Source, r.SNI, r.Target, r.ServerAddr, r.ClientAddr)
			}
			if r.Error != "" || r.ClientLeg == nil || r.ClientLeg.Error != "" || r.UpstreamLeg == nil || r.UpstreamLeg.Error != "" || !r.UpstreamLeg.Verified {
				t.Fatalf("connection %d failed: %s", i+1, nsJSON(r))
			}
			page, _ := os.ReadFile(pages[i])
			if said := originSaid(t, string(page)); said != r.UpstreamLeg.Resumed || said != (i == 1) {
				t.Errorf("connection %d: the origin says resumed=%v, upstream_leg.resumed=%v; want %v", i+1, said, r.UpstreamLeg.Resumed, i == 1)
			}
			if want := []inspect.VerdictCode{inspect.CodeFirstContact, inspect.CodeBothResumed}[i]; r.Verdict.Code != want || r.ClientLeg.Resumed != (i == 1) {
				t.Errorf("connection %d: verdict %s, want %s: %s", i+1, r.Verdict.Code, want, r.Verdict.Text)
			}
		}
	})
	t.Run("curl_http_by_name", func(t *testing.T) {
		out, _, err := e.n.run(e.ctx, e.n.client, "", e.curl, "-sS", "--noproxy", "*", "--max-time", "10", "http://origin.test/")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "hello over http from go origin origin.test") {
			t.Errorf("http://origin.test/ through the Host listener: %q", out)
		}
	})
	t.Run("no_sni_routed_by_recent_lookup", func(t *testing.T) {
		// s_client resolves origin.test (through tlsresume's DNS) and sends
		// no SNI: the connection goes where its client just looked up.
		sc := e.sClient(t, "-connect", "origin.test:443", "-noservername", "-CAfile", p.caFile,
			"-verify_return_error", "-verify_hostname", "origin.test")
		r := p.take(1)[0]
		t.Logf("record: %s", nsBrief(r))
		if r.Source != "sni" || r.SNI != "" || r.Target != "origin.test:443" || r.UpstreamLeg == nil || !r.UpstreamLeg.Verified ||
			!strings.Contains(sc.page, "s_server") {
			t.Errorf("SNI-less connection: %s; page %q", nsJSON(r), tlstest.Tail(sc.page, 200))
		}
	})
}
