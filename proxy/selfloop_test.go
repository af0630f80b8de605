package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/tlsresume/tlsresume/proxy/web"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

func listenCounting(t *testing.T, addr string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &countingListener{Listener: ln}
}

func addrPort(a net.Addr) netip.AddrPort { return netip.MustParseAddrPort(a.String()) }

// rebindingDNS answers A queries for one name on loopback UDP: first with
// first, then always with then, as a name rebound between the proxy's
// check of a request's target and its dial would.
type rebindingDNS struct {
	pc      net.PacketConn
	asked   atomic.Int32
	name    string
	answers [2]netip.Addr
}

func startRebindingDNS(t *testing.T, name string, first, then netip.Addr) *rebindingDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &rebindingDNS{pc: pc, name: name, answers: [2]netip.Addr{first, then}}
	go d.serve()
	return d
}

func (d *rebindingDNS) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if msg, err := d.answer(buf[:n]); err == nil {
			d.pc.WriteTo(msg, from)
		}
	}
}

func (d *rebindingDNS) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if q.Type == dnsmessage.TypeA && strings.EqualFold(q.Name.String(), d.name) {
		ip := d.answers[min(d.asked.Add(1)-1, 1)]
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET}, dnsmessage.AResource{A: ip.As4()})
	}
	return b.Finish()
}

func (d *rebindingDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "udp", d.pc.LocalAddr().String())
	}}
}

// TestRefusesEveryOwnListener: no client reaches a listener of tlsresume
// through the proxy, by forward request or by CONNECT: the live view (a
// real one, whose ticket-key rotation must not happen), a listener on
// 0.0.0.0 (as the DNS server's may be) by 127.0.0.2, 0.0.0.0 and
// localhost, the proxy's own HTTP listener, and the view by a name that
// rebinds to it after the proxy checked the request's target: the dial
// itself refuses it.
func TestRefusesEveryOwnListener(t *testing.T) {
	viewLn := listenCounting(t, "127.0.0.1:0")
	anyLn := listenCounting(t, "0.0.0.0:0")
	hostLn := listenCounting(t, "127.0.0.1:0")
	rebind := startRebindingDNS(t, "rebind.test.", netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.1"))
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.SelfAddrs = []netip.AddrPort{addrPort(viewLn.Addr()), addrPort(anyLn.Addr())}
		c.Resolver = rebind.resolver()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.srv.ServeHostHTTP(ctx, hostLn)
	view := web.New(web.Config{Addr: viewLn.Addr().String(), TicketKeys: &web.TicketKeyControl{
		List: func() any { return e.srv.TicketKeys() }, Rotate: e.srv.RotateTicketKeys}})
	go view.Serve(ctx, viewLn)
	go func() { // the 0.0.0.0 listener: anything it accepts is a loop
		for {
			c, err := anyLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	keysBefore := e.srv.TicketKeys()

	_, vp, _ := net.SplitHostPort(viewLn.Addr().String())
	_, ap, _ := net.SplitHostPort(anyLn.Addr().String())
	proxyURL, _ := url.Parse("http://" + e.addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 10 * time.Second}
	// First: the proxy's check resolves rebind.test to 127.0.0.3, the dial
	// to the view's 127.0.0.1.
	forward := func(t *testing.T, hostport string, want int) {
		t.Helper()
		resp, err := client.Post("http://"+hostport+"/api/client/ticket-keys/rotate?forget=1", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(b), "(a loop)") {
			t.Errorf("forward request to %s: %s %q, want %d naming the loop", hostport, resp.Status, b, want)
		}
	}
	t.Run("forward-rebinding-name", func(t *testing.T) { forward(t, "rebind.test:"+vp, http.StatusBadGateway) })
	for _, target := range []string{
		"127.0.0.1:" + vp, "localhost:" + vp, "rebind.test:" + vp,
		"127.0.0.2:" + ap, "0.0.0.0:" + ap, "localhost:" + ap,
		hostLn.Addr().String(),
	} {
		t.Run(target, func(t *testing.T) {
			forward(t, target, http.StatusForbidden)
			c := dialFrom(t, "127.0.0.1", e.addr)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("CONNECT %s: %v %v, want 403", target, resp, err)
			}
		})
	}
	t.Run("dial", func(t *testing.T) {
		for _, target := range []string{"localhost:" + vp, "127.0.0.2:" + ap} {
			if c, err := e.srv.dialer().DialContext(ctx, "tcp", target); !errors.Is(err, errLoop) {
				t.Errorf("dial %s: %v, want the loop refused", target, err)
				if c != nil {
					c.Close()
				}
			}
		}
	})
	if n, m := viewLn.accepted.Load(), anyLn.accepted.Load(); n != 0 || m != 0 {
		t.Errorf("the view accepted %d connections, the 0.0.0.0 listener %d", n, m)
	}
	if n := hostLn.accepted.Load(); n != 0 {
		t.Errorf("the HTTP listener accepted %d connections", n)
	}
	if after := e.srv.TicketKeys(); !slices.Equal(ids(keysBefore), ids(after)) {
		t.Errorf("ticket keys %v became %v", ids(keysBefore), ids(after))
	}
}

func ids(keys []KeyInfo) []string {
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprint(k))
	}
	return out
}
