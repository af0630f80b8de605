package wgsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy"
)

// port443 binds UDP (and, with tcp, TCP) port 443 on a loopback address
// of its own, 127.R.R.R, chosen at random: WireGuard devices' QUIC is
// their UDP to port 443, so a QUIC origin must listen there. No fixed
// address is ever used; binding port 443 needs root (else the test is
// skipped, or fails under TLSRESUME_REQUIRE_CLIENTS=1).
func port443(t *testing.T, tcp bool) (*net.UDPConn, net.Listener) {
	t.Helper()
	for range 20 {
		ip := net.IPv4(127, byte(2+rand.IntN(250)), byte(rand.IntN(256)), byte(1+rand.IntN(254)))
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: 443})
		if errors.Is(err, syscall.EACCES) {
			tlstest.Unavailable(t, "binding UDP port 443 for a QUIC origin needs root: %v", err)
		}
		if err != nil {
			continue
		}
		if !tcp {
			return uc, nil
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "443"))
		if err != nil {
			uc.Close()
			continue
		}
		return uc, ln
	}
	t.Fatal("no loopback address free on port 443 in 20 tries")
	return nil, nil
}

// h3Origin is an HTTP/3 origin (quic-go) that says whether it resumed
// each connection, in the page and in resumed.
type h3Origin struct {
	addr    netip.AddrPort
	mu      sync.Mutex
	resumed []bool
}

func startH3Origin(t *testing.T, udp *net.UDPConn) *h3Origin {
	t.Helper()
	o := &h3Origin{addr: udp.LocalAddr().(*net.UDPAddr).AddrPort()}
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{originCert.TLS}, MinVersion: tls.VersionTLS13}),
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			o.mu.Lock()
			o.resumed = append(o.resumed, c.ConnectionState().TLS.DidResume)
			o.mu.Unlock()
			return ctx
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s over %s, resumed=%v", r.URL.Path, r.Proto, r.TLS.DidResume)
		}),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(udp) }()
	t.Cleanup(func() {
		srv.Close()
		udp.Close()
		<-done
	})
	return o
}

// h3Client is quic-go's HTTP/3 client on the device, its QUIC on one UDP
// socket through the tunnel, with a session cache: its second connection
// to an origin offers the first one's ticket.
func h3Client(t *testing.T, e *env, dst netip.AddrPort, handshake time.Duration) *http.Client {
	t.Helper()
	// The tunnel's socket is no *net.UDPConn whose buffers quic-go could size.
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	c, err := e.peer.DialUDP(dst)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: c.(net.PacketConn)}
	h3 := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: originCert.Pool(), ServerName: "origin.test", ClientSessionCache: tls.NewLRUClientSessionCache(4)},
		QUICConfig:      &quic.Config{HandshakeIdleTimeout: handshake},
		Dial: func(ctx context.Context, _ string, tlsConf *tls.Config, conf *quic.Config) (*quic.Conn, error) {
			return tr.Dial(ctx, net.UDPAddrFromAddrPort(dst), tlsConf, conf)
		},
	}
	t.Cleanup(func() {
		h3.Close()
		tr.Close()
		c.Close()
	})
	return &http.Client{Transport: h3, Timeout: 10 * time.Second}
}

// quicRecords collects the proxy's QUIC and TCP records until want of
// each arrived, or 20s passed.
func quicRecords(t *testing.T, e *env, wantQUIC, wantTCP int) (quicRecs, tcpRecs []*inspect.ConnRecord) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for len(quicRecs) < wantQUIC || len(tcpRecs) < wantTCP {
		select {
		case r := <-e.records:
			if r.Transport == inspect.TransportNameQUIC {
				quicRecs = append(quicRecs, r)
			} else {
				tcpRecs = append(tcpRecs, r)
			}
		case <-deadline:
			t.Fatalf("%d QUIC and %d TCP records after 20s; want %d and %d", len(quicRecs), len(tcpRecs), wantQUIC, wantTCP)
		}
	}
	return quicRecs, tcpRecs
}

// TestQUICPass: a device's quic-go HTTP/3 client reaches a quic-go origin
// through the tunnel twice, on one UDP socket, with a session cache, and
// the proxy relays it untouched (--quic pass): the second connection
// resumes, as the origin says, and the proxy's two records (one per QUIC
// connection of the one flow) say what the client offered and what the
// origin answered: first a full handshake, then the PSK taken.
func TestQUICPass(t *testing.T) {
	udp, _ := port443(t, false)
	o := startH3Origin(t, udp)
	e := newEnvProxy(t, func(c *Config) { c.Local = true }, func(c *proxy.Config) { c.QUICIdleTimeout = 500 * time.Millisecond })
	client := h3Client(t, e, o.addr, 5*time.Second)
	for i := range 2 {
		resp, err := client.Get(fmt.Sprintf("https://origin.test/page-%d", i))
		if err != nil {
			t.Fatalf("request %d over HTTP/3 through the tunnel: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("over HTTP/3.0, resumed=%v", i == 1); !strings.Contains(string(body), want) {
			t.Errorf("page %d: %q, want %q", i+1, body, want)
		}
		// The ticket came with the response; the next request dials anew.
		client.Transport.(*http3.Transport).CloseIdleConnections()
	}
	recs, _ := quicRecords(t, e, 2, 0)
	for i, r := range recs {
		resumed := i == 1
		t.Logf("record %s: %s (%s)", r.ID, r.Verdict.Code, r.Verdict.Text)
		if r.Source != inspect.SourceWireGuard || r.Device != "phone" || r.Target != o.addr.String() || r.SNI != "origin.test" ||
			r.QUIC == nil || r.QUIC.VersionName != "v1" || r.Passthrough != "QUIC relayed untouched (--quic pass)" {
			t.Errorf("record %d: source %q device %q target %q sni %q quic %+v passthrough %q", i+1,
				r.Source, r.Device, r.Target, r.SNI, r.QUIC, r.Passthrough)
		}
		ch, sh := r.ClientHello, r.ServerHello
		if ch == nil || sh == nil || !strings.HasPrefix(ch.JA4, "q13") || ch.PreSharedKey.Offered != resumed || !sh.Complete || sh.Resumed != resumed {
			t.Fatalf("record %d: hello %+v answer %+v; want a q JA4, the PSK offered and taken: %v", i+1, ch, sh, resumed)
		}
		want := map[bool]inspect.VerdictCode{false: inspect.CodePassthroughNotResumed, true: inspect.CodePassthroughResumed}[resumed]
		if r.Verdict.Code != want || r.BytesUp == 0 || r.BytesDown == 0 || r.QUICFallback != nil {
			t.Errorf("record %d: verdict %s, bytes %d up %d down, quic_fallback %+v; want %s and bytes both ways", i+1,
				r.Verdict.Code, r.BytesUp, r.BytesDown, r.QUICFallback, want)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.resumed) != 2 || o.resumed[0] || !o.resumed[1] {
		t.Errorf("the origin resumed %v; want its second connection only", o.resumed)
	}
}

// TestQUICBlock: with --quic block, the device's HTTP/3 client never
// reaches the origin (not one datagram), gives up, and falls back to TCP
// to the same address, port 443, which tlsresume intercepts. The blocked
// QUIC connection's record has the client's hello, no answer, the verdict
// quic_blocked and names the TCP connection; the TCP record names it back.
func TestQUICBlock(t *testing.T) {
	udp, ln := port443(t, true)
	var reached atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			reached.Add(1)
		}
	}()
	t.Cleanup(func() { udp.Close() })
	dst := netip.MustParseAddrPort(ln.Addr().String())
	serveTLS(t, ln)
	e := newEnvProxy(t, func(c *Config) { c.Local = true }, func(c *proxy.Config) { c.QUIC = proxy.QUICBlock })

	client := h3Client(t, e, dst, 700*time.Millisecond)
	if resp, err := client.Get("https://origin.test/"); err == nil {
		resp.Body.Close()
		t.Fatal("HTTP/3 went through --quic block")
	}
	// The app's fallback: HTTPS over TCP, to the same address.
	c, err := e.dial(dst)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: e.ca, ServerName: "origin.test"})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := readLine(tc)
	tc.Close()
	if err != nil || line != "resumed=false" {
		t.Fatalf("the TCP fallback through tlsresume: %q, %v", line, err)
	}
	quicRecs, tcpRecs := quicRecords(t, e, 1, 1)
	q, tcp := quicRecs[0], tcpRecs[0]
	t.Logf("QUIC record %s: %s (%s)", q.ID, q.Verdict.Code, q.Verdict.Text)
	if n := reached.Load(); n != 0 {
		t.Errorf("%d datagrams reached the origin through --quic block", n)
	}
	if q.ClientHello == nil || !strings.HasPrefix(q.ClientHello.JA4, "q13") || q.ServerHello != nil || q.SNI != "origin.test" ||
		q.Passthrough != "" || q.Device != "phone" || q.BytesUp == 0 || q.BytesDown != 0 {
		t.Errorf("blocked record: hello %v answer %+v sni %q passthrough %q device %q bytes %d/%d; want the hello, no answer, bytes up only",
			q.ClientHello != nil, q.ServerHello, q.SNI, q.Passthrough, q.Device, q.BytesUp, q.BytesDown)
	}
	if fb := q.QUICFallback; fb == nil || !fb.Blocked || fb.TCPConn != tcp.ID || fb.AfterMS <= 0 || q.Verdict.Code != inspect.CodeQUICBlocked {
		t.Errorf("blocked record: quic_fallback %+v verdict %s; want blocked, tcp_conn %s, and quic_blocked", fb, q.Verdict.Code, tcp.ID)
	}
	if !strings.Contains(q.Verdict.Text, "QUIC blocked (--quic block): the app falls back to TCP; it did: "+tcp.ID) {
		t.Errorf("blocked record's verdict text: %q", q.Verdict.Text)
	}
	if tcp.AfterQUIC != q.ID || tcp.Transport != inspect.TransportNameTCP || tcp.ClientLeg == nil || tcp.ClientLeg.Error != "" {
		t.Errorf("TCP record %s: after_quic %q transport %q client leg %+v; want after_quic %s and an intercepted connection",
			tcp.ID, tcp.AfterQUIC, tcp.Transport, tcp.ClientLeg, q.ID)
	}
}

// serveTLS serves ln as startTLSOrigin's servers do: "resumed=BOOL\n".
func serveTLS(t *testing.T, ln net.Listener) {
	t.Helper()
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{originCert.TLS}})
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				fmt.Fprintf(tc, "resumed=%v\n", tc.ConnectionState().DidResume)
				io.Copy(io.Discard, tc)
			}()
		}
	}()
}

// readLine reads one line, without its newline.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		if _, err := r.Read(buf); err != nil {
			return b.String(), err
		}
		if buf[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(buf[0])
	}
}
