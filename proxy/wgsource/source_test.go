package wgsource

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// handshake makes one TLS connection from the device to dst, trusting
// tlsresume's CA, and returns whether the client resumed and what the
// origin said of its own leg.
func (e *env) handshake(t *testing.T, dst netip.AddrPort, sni string, cache tls.ClientSessionCache) (bool, string) {
	t.Helper()
	c, err := e.dial(dst)
	if err != nil {
		t.Fatalf("dialling %s through the tunnel: %v", dst, err)
	}
	cfg := &tls.Config{ServerName: sni, RootCAs: e.ca, ClientSessionCache: cache}
	if sni == "" {
		cfg = &tls.Config{InsecureSkipVerify: true} // Go sends no SNI without a name
	}
	tc := tls.Client(c, cfg)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	// A byte from the client first: the proxy then relays at once, where
	// it would wait two seconds for an HTTP request (relay.go, sniffHTTP).
	// Reading the origin's line also reads the TLS 1.3 tickets sent before it.
	tc.Write([]byte("hello\n"))
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		t.Fatalf("TLS to %s through the tunnel: %v", dst, err)
	}
	return tc.ConnectionState().DidResume, strings.TrimSpace(line)
}

// TestTunnelTLSResumes: a device's TLS connections through the tunnel to a
// loopback origin (allowed by Local), over IPv4 and IPv6, are intercepted
// by the proxy; the second of each pair resumes on both legs, and the
// records name the source, the device, its tunnel address and the
// destination.
func TestTunnelTLSResumes(t *testing.T) {
	o := startTLSOrigin(t)
	e := newEnv(t, func(c *Config) { c.Local = true })
	d := e.src.Devices()[0]
	for _, tt := range []struct {
		name string
		dst  netip.AddrPort
		from netip.Addr
	}{{"ipv4", o.v4, d.IPv4}, {"ipv6", o.v6, d.IPv6}} {
		t.Run(tt.name, func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				resumed, origin := e.handshake(t, tt.dst, "origin.test", cache)
				r := e.next(t)
				want := i == 1
				if resumed != want || origin != fmt.Sprintf("resumed=%v", want) {
					t.Errorf("connection %d: client resumed %v, origin said %q; want both %v", i+1, resumed, origin, want)
				}
				client, _ := netip.ParseAddrPort(r.ClientAddr)
				if r.Source != inspect.SourceWireGuard || r.Device != "phone" || r.Target != tt.dst.String() || client.Addr() != tt.from || r.SNI != "origin.test" {
					t.Errorf("connection %d: record source %q device %q target %q client %s sni %q; want wireguard phone %s %s origin.test",
						i+1, r.Source, r.Device, r.Target, r.ClientAddr, r.SNI, tt.dst, tt.from)
				}
				if want && (r.Verdict.Code != inspect.CodeBothResumed || !r.ClientLeg.Resumed || !r.UpstreamLeg.Resumed) {
					t.Errorf("connection %d: verdict %s (%s), want both_resumed", i+1, r.Verdict.Code, r.Verdict.Text)
				}
			}
		})
	}
	st, err := e.src.Stats()
	if err != nil || len(st) != 1 || st[0].TCPConns != 4 || st[0].LastHandshake.IsZero() {
		t.Errorf("stats %+v (%v): want phone with 4 connections and a handshake", st, err)
	}
}

// TestTunnelDNS: the device's lookups through the tunnel's DNS address,
// over UDP and TCP, IPv4 and IPv6, are answered by the upstream resolver;
// the following connections' records name what the device looked up
// (dns_name), which also names the host of a hello without SNI.
func TestTunnelDNS(t *testing.T) {
	o := startTLSOrigin(t)
	e := newEnv(t, func(c *Config) { c.Local = true })
	s4, s6 := wireguard.ServerAddrs()
	for _, tt := range []struct {
		name, network string
		server        netip.Addr
	}{{"udp-ipv4", "udp", s4}, {"tcp-ipv4", "tcp", s4}, {"udp-ipv6", "udp", s6}, {"tcp-ipv6", "tcp", s6}} {
		t.Run(tt.name, func(t *testing.T) {
			res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				dst := netip.AddrPortFrom(tt.server, 53)
				if tt.network == "tcp" {
					return e.peer.DialTCP(ctx, dst)
				}
				return e.peer.DialUDP(dst)
			}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			addrs, err := res.LookupNetIP(ctx, "ip", "origin.test")
			slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
			if err != nil || fmt.Sprint(addrs) != "[127.0.0.1 ::1]" {
				t.Fatalf("looking up origin.test through the tunnel: %v %v; want 127.0.0.1 and ::1", addrs, err)
			}
			if _, err := res.LookupNetIP(ctx, "ip4", "nowhere.test"); err == nil || !strings.Contains(err.Error(), "no such host") {
				t.Errorf("looking up an unknown name: %v, want no such host", err)
			}
		})
	}
	for _, tt := range []struct {
		dst netip.AddrPort
		sni string
	}{{o.v4, "origin.test"}, {o.v6, ""}} {
		e.handshake(t, tt.dst, tt.sni, nil)
		r := e.next(t)
		// The host keeps its port unless it is 443 (inspect.HostOf).
		host := net.JoinHostPort("origin.test", strconv.Itoa(int(tt.dst.Port())))
		if r.DNSName != "origin.test" || r.SNI != tt.sni || inspect.HostOf(r) != host || r.UpstreamLeg == nil || !r.UpstreamLeg.Verified {
			t.Errorf("connection to %s (sni %q): dns_name %q host %q upstream %+v; want origin.test (host %s), verified", tt.dst, tt.sni, r.DNSName, inspect.HostOf(r), r.UpstreamLeg, host)
		}
	}
	st, _ := e.src.Stats()
	if st[0].DNSQueries < 8 {
		t.Errorf("dns queries %d, want at least 8", st[0].DNSQueries)
	}
}

// TestTunnelUDP: a device's datagrams to a loopback echo server come back
// over IPv4 and IPv6; a flow to port 443 goes through Config.QUIC.
func TestTunnelUDP(t *testing.T) {
	v4, v6 := udpEcho(t)
	quic := make(chan *Flow, 1)
	e := newEnv(t, func(c *Config) {
		c.Local = true
		c.QUIC = func(ctx context.Context, f *Flow) error {
			quic <- f
			return RelayFlow(ctx, f)
		}
	})
	for _, dst := range []netip.AddrPort{v4, v6} {
		c, err := e.peer.DialUDP(dst)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"one", "two"} {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(msg))
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != msg {
				t.Errorf("echo of %q from %s through the tunnel: %q, %v", msg, dst, buf[:n], err)
			}
		}
		c.Close()
	}
	c, err := e.peer.DialUDP(netip.MustParseAddrPort("127.0.0.1:443"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("initial"))
	select {
	case f := <-quic:
		if f.Device.Dst.Port() != 443 || f.Device.Device != "phone" || f.Origin == nil {
			t.Errorf("QUIC flow %+v", f.Device)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a flow to port 443 never reached Config.QUIC")
	}
	st, _ := e.src.Stats()
	if st[0].OtherUDPFlows != 2 || st[0].QUICFlows != 1 || st[0].UDPFlows != 3 {
		t.Errorf("udp flows: other %d quic %d all %d; want 2, 1, 3", st[0].OtherUDPFlows, st[0].QUICFlows, st[0].UDPFlows)
	}
}

// TestTunnelRefusals: without Local, a device's connections to loopback
// (IPv4 and IPv6) and to the tunnel's own addresses on a port other than
// DNS's are reset after their handshake and recorded with why; with it,
// tlsresume's own listener is still refused. Datagrams to loopback are
// dropped.
func TestTunnelRefusals(t *testing.T) {
	o := startTLSOrigin(t)
	echo4, _ := udpEcho(t)
	s4, s6 := wireguard.ServerAddrs()
	local := newEnv(t, func(c *Config) { c.Local = true })
	for _, tt := range []struct {
		e    *env
		dst  netip.AddrPort
		want string
	}{
		{nil, o.v4, "is this machine (loopback); --wireguard-local"},
		{nil, o.v6, "is this machine (loopback)"},
		{nil, netip.AddrPortFrom(s4, 8080), "inside the WireGuard tunnel"},
		{nil, netip.AddrPortFrom(s6, 443), "inside the WireGuard tunnel"},
		{local, local.self, "tlsresume itself"},
		{local, netip.AddrPortFrom(s4, 22), "inside the WireGuard tunnel"},
	} {
		e := tt.e
		if e == nil {
			e = newEnv(t, nil)
		}
		c, err := e.dial(tt.dst)
		if err != nil {
			t.Fatalf("dialling %s: %v (the handshake completes before the reset)", tt.dst, err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !isReset(err) {
			t.Errorf("%s: the device read %v, want a reset", tt.dst, err)
		}
		c.Close()
		r := e.next(t)
		if !strings.Contains(r.Error, tt.want) || r.Device != "phone" || r.Target != tt.dst.String() || r.Source != inspect.SourceWireGuard {
			t.Errorf("%s: record error %q device %q target %q; want an error saying %q", tt.dst, r.Error, r.Device, r.Target, tt.want)
		}
	}
	e := newEnv(t, nil)
	c, err := e.peer.DialUDP(echo4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 8)); err == nil {
		t.Errorf("a datagram to loopback was answered with %d bytes", n)
	}
	st, _ := e.src.Stats()
	if st[0].RefusedUDPFlows != 1 || st[0].OtherUDPFlows != 0 {
		t.Errorf("refused udp %d relayed %d; want 1 refused", st[0].RefusedUDPFlows, st[0].OtherUDPFlows)
	}
	// With Local, the WireGuard socket itself (one of the proxy's own
	// addresses, Config.SelfAddrs) is still out of reach.
	wg := local.src.Addr().AddrPort()
	c2, err := local.peer.DialUDP(netip.AddrPortFrom(wg.Addr().Unmap(), wg.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("x"))
	waitFor(t, func() bool { st, _ := local.src.Stats(); return st[0].RefusedUDPFlows == 1 })
	if st, _ := local.src.Stats(); st[0].OtherUDPFlows != 0 {
		t.Errorf("a flow to the WireGuard socket itself was relayed")
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// TestTunnelDNSOneSocket: two queries sent at once from one socket, as
// glibc sends A and AAAA, are both answered at once: the flow does not
// end with its first answer, dropping the second query (glibc then waits
// 5 seconds and asks again). The resolver answers after 200ms, so that
// the second query is in the flow before the first is answered.
func TestTunnelDNSOneSocket(t *testing.T) {
	slow := slowDNS(t, tlstest.StartDNS(t, testZone), 200*time.Millisecond)
	e := newEnv(t, func(c *Config) { c.DNSUpstream = slow })
	s4, _ := wireguard.ServerAddrs()
	c, err := e.peer.DialUDP(netip.AddrPortFrom(s4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, qt := range []dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA} {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: uint16(i + 1), RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName("origin.test."), Type: qt, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		c.Write(q)
	}
	got := map[uint16]int{}
	c.SetReadDeadline(time.Now().Add(time.Second))
	for range 2 {
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("answers within a second: %v (got %v)", err, got)
		}
		var p dnsmessage.Parser
		h, _ := p.Start(buf[:n])
		p.SkipAllQuestions()
		answers, _ := p.AllAnswers()
		got[h.ID] = len(answers)
	}
	if got[1] != 1 || got[2] != 1 {
		t.Errorf("answers by query id %v, want one address for each", got)
	}
}

// slowDNS relays UDP queries to upstream, each after delay.
func slowDNS(t *testing.T, upstream string, delay time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		for {
			buf := make([]byte, 1500)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			go func() {
				time.Sleep(delay)
				c, err := net.Dial("udp", upstream)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				c.Write(buf[:n])
				if n, err := c.Read(buf); err == nil {
					pc.WriteTo(buf[:n], from)
				}
			}()
		}
	}()
	return pc.LocalAddr().String()
}

// TestTunnelServerSpeaksFirst: a device's connection to a server that
// speaks first (an SMTP greeting), on a port other than 443, is relayed
// untouched once the device has been silent for serverFirstWait, and
// recorded as not TLS; the greeting reaches the device long before the
// peek timeout would have cut it off.
func TestTunnelServerSpeaksFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "220 smtp.test ready\r\n")
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "221 bye "+line)
			}()
		}
	}()
	e := newEnv(t, func(c *Config) { c.Local = true })
	dst := netip.MustParseAddrPort(ln.Addr().String())
	start := time.Now()
	c, err := e.dial(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil || greeting != "220 smtp.test ready\r\n" || time.Since(start) > serverFirstWait+2*time.Second {
		r := e.next(t)
		t.Fatalf("greeting %q after %v (%v); want the server's within about %v; record %+v", greeting, time.Since(start), err, serverFirstWait, r)
	}
	io.WriteString(c, "QUIT\r\n")
	if bye, _ := br.ReadString('\n'); bye != "221 bye QUIT\r\n" {
		t.Errorf("answer to QUIT: %q", bye)
	}
	c.Close()
	r := e.next(t)
	if r.Verdict.Code != inspect.CodeNotTLS || !strings.Contains(r.Error, "sent nothing") || r.Device != "phone" || r.BytesUp != 6 {
		t.Errorf("record verdict %s error %q device %q bytes_up %d; want not_tls, the silence named, 6 bytes up", r.Verdict.Code, r.Error, r.Device, r.BytesUp)
	}
}

// TestTunnelMagicHost: a phone with the tunnel on and no CA yet looks up
// tlsresume.proxy through the tunnel's DNS, gets the tunnel's own address,
// and fetches the CA download page and the CA itself over plain HTTP
// there, through the same guard as ever: a page of another site is
// refused its /stats.
func TestTunnelMagicHost(t *testing.T) {
	e := newEnv(t, nil)
	s4, s6 := wireguard.ServerAddrs()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return e.peer.DialUDP(netip.AddrPortFrom(s4, 53))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip", proxy.MagicHost)
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	if err != nil || fmt.Sprint(addrs) != fmt.Sprint([]netip.Addr{s4, s6}) {
		t.Fatalf("looking up %s through the tunnel: %v %v; want %v and %v", proxy.MagicHost, addrs, err, s4, s6)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return e.peer.DialTCP(ctx, netip.AddrPortFrom(s4, 80))
		}}}
	get := func(path string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+proxy.MagicHost+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s through the tunnel: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/", nil); code != 200 || !strings.Contains(body, "SHA-256 fingerprint") {
		t.Fatalf("GET / through the tunnel: %d %.200q; want the CA page", code, body)
	}
	if code, body := get("/ca/"+certs.FormatPEM.FileName(), nil); code != 200 || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("GET /ca/%s through the tunnel: %d %.80q; want the CA", certs.FormatPEM.FileName(), code, body)
	}
	if code, _ := get("/stats", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-site GET /stats through the tunnel: %d, want 403", code)
	}
}
