//go:build linux

package wireguard

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"golang.org/x/sys/unix"
)

// TestNetnsRealClient runs the server against a real WireGuard client:
// Debian's wireguard-go, configured by `wg setconf` from the text WGQuick
// renders, in a network namespace whose every route goes through it. curl
// in the namespace fetches https://example.com/ from a far IPv4 and a far
// IPv6 address; the server (in this process, on the veth's root side)
// hands each connection to a HandleTCP that relays to a loopback HTTPS
// origin, and the second connection of each pair resumes.
//
//	netns  v0 10.200.73.2/30 ── root 10.200.73.1:PORT (this process, UDP)
//	       wg iface 10.73.0.2/32 fd74:6c73:7265::2/128, default routes
func TestNetnsRealClient(t *testing.T) {
	e := newWGNetns(t)
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "resumed=%v\n", r.TLS.DidResume)
	}))
	origin.EnableHTTP2 = false
	origin.StartTLS()
	t.Cleanup(origin.Close)
	caFile := filepath.Join(t.TempDir(), "origin.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o600)

	seen := make(chan tcpSeen, 8)
	f := newFixture(t, []string{"phone"}, func(c *Config) {
		c.ListenAddr = e.rootAddr.String() + ":0"
		c.HandleTCP = recordTCP(seen, relayTo(origin.Listener.Addr().String()))
	})
	d, _, _ := f.st.Device("phone")
	e.startClient(t, f, d)

	for _, dst := range []netip.AddrPort{farV4, farV6} {
		host := dst.Addr().String()
		if dst.Addr().Is6() {
			host = "[" + host + "]"
		}
		// Two URLs with "Connection: close" make two connections; curl
		// offers the first one's session on the second.
		out, _, err := e.run(t, e.curl, "-sS", "--max-time", "10", "--http1.1", "-H", "Connection: close", "--cacert", caFile,
			"--resolve", "example.com:443:"+host, "https://example.com/", "https://example.com/")
		if err != nil {
			t.Fatalf("curl to %s through the tunnel: %v", dst, err)
		}
		if out != "resumed=false\nresumed=true\n" {
			t.Errorf("curl to %s: the origin said %q, want a full handshake and then a resumed one", dst, out)
		}
		for i := range 2 {
			s := <-seen
			from := d.IPv4
			if dst.Addr().Is6() {
				from = d.IPv6
			}
			if s.dst != dst || s.device != "phone" || s.remote.Addr().Unmap() != from {
				t.Errorf("connection %d: handler saw dst %s device %q from %s; want %s phone %s", i+1, s.dst, s.device, s.remote, dst, from)
			}
		}
	}
	out, _, err := e.run(t, e.wg, "show", e.iface, "latest-handshakes")
	if err != nil || !regexp.MustCompile(`\t[1-9][0-9]+\n`).MatchString(out) {
		t.Errorf("wg show latest-handshakes: %q %v; want a handshake", out, err)
	}
	st, _ := f.srv.Stats()
	if st[0].LastHandshake.IsZero() || st[0].TCPConns != 4 {
		t.Errorf("server stats %+v: want a handshake and 4 connections", st[0])
	}
}

// wgNetns is the namespace and the tools.
type wgNetns struct {
	ip, wgGo, wg, curl string
	ns, rootLink       string
	iface              string // the WireGuard interface in the namespace
	rootAddr           netip.Addr
}

var wgNetnsSeq atomic.Int32

// newWGNetns creates the namespace and its veth pair, or ends t with
// tlstest.Unavailable when not root or a tool is missing.
func newWGNetns(t *testing.T) *wgNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		tlstest.Unavailable(t, "the WireGuard network-namespace test needs root (uid %d)", os.Geteuid())
	}
	e := &wgNetns{ip: tlstest.Need(t, "ip"), wgGo: tlstest.Need(t, "wireguard-go"), wg: tlstest.Need(t, "wg"), curl: tlstest.Need(t, "curl")}
	lockHost(t, filepath.Join(os.TempDir(), "tlsresume-wg-netns.lock"))
	// Names unique per process and test, at most 15 bytes (IFNAMSIZ):
	// wg's control sockets in /var/run/wireguard are shared by every
	// namespace, so the WireGuard interface's name must be too.
	id := fmt.Sprintf("%d%c", os.Getpid(), 'a'+wgNetnsSeq.Add(1)%26)
	e.ns, e.rootLink, e.iface = "tlsresume-wg"+id, "trw"+id, "trwg"+id
	e.rootAddr = netip.MustParseAddr("10.200.73.1")
	e.must(t, "netns", "add", e.ns)
	t.Cleanup(func() { e.root("netns", "del", e.ns) })
	e.must(t, "link", "add", e.rootLink, "type", "veth", "peer", "name", "v0", "netns", e.ns)
	t.Cleanup(func() { e.root("link", "del", e.rootLink) })
	e.must(t, "addr", "add", "10.200.73.1/30", "dev", e.rootLink)
	e.must(t, "link", "set", e.rootLink, "up")
	e.must(t, "-n", e.ns, "addr", "add", "10.200.73.2/30", "dev", "v0")
	e.must(t, "-n", e.ns, "link", "set", "v0", "up")
	e.must(t, "-n", e.ns, "link", "set", "lo", "up")
	return e
}

// startClient runs wireguard-go in the namespace, configures it from the
// device's rendered configuration, and routes everything through it.
func (e *wgNetns) startClient(t *testing.T, f *fixture, d Device) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := tlstest.Command(ctx, e.ip, "netns", "exec", e.ns, e.wgGo, "-f", e.iface)
	var logs tlstest.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting wireguard-go: %v", err)
	}
	sock := "/var/run/wireguard/" + e.iface + ".sock"
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		os.Remove(sock) // wireguard-go, killed, leaves its control socket behind
		if t.Failed() {
			t.Logf("wireguard-go said: %s", tlstest.Tail(logs.String(), 1500))
		}
	})
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("wireguard-go made no control socket in 10s: %s", tlstest.Tail(logs.String(), 800))
		}
	}
	text, err := WGQuick(d, f.st.ServerKey(), f.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// wg setconf takes the wg(8) format: wg-quick's own keys are not in it.
	conf := regexp.MustCompile(`(?m)^(Address|DNS) = .*\n`).ReplaceAllString(text, "")
	path := filepath.Join(t.TempDir(), "wg.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run(t, e.wg, "setconf", e.iface, path); err != nil {
		t.Fatalf("wg setconf with:\n%s\n%v", conf, err)
	}
	e.must(t, "-n", e.ns, "addr", "add", netip.PrefixFrom(d.IPv4, 32).String(), "dev", e.iface)
	e.must(t, "-n", e.ns, "-6", "addr", "add", netip.PrefixFrom(d.IPv6, 128).String(), "dev", e.iface, "nodad")
	e.must(t, "-n", e.ns, "link", "set", e.iface, "mtu", "1420", "up")
	e.must(t, "-n", e.ns, "route", "add", "default", "dev", e.iface)
	e.must(t, "-n", e.ns, "-6", "route", "add", "default", "dev", e.iface)
}

// run runs a tool inside the namespace, bounded by 30 seconds.
func (e *wgNetns) run(t *testing.T, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return tlstest.Run(ctx, "", e.ip, append([]string{"netns", "exec", e.ns, name}, args...)...)
}

func (e *wgNetns) must(t *testing.T, args ...string) {
	t.Helper()
	if out, err := e.root(args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// root runs ip(8) in the root namespace, for setup and cleanup.
func (e *wgNetns) root(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, err := tlstest.Run(ctx, "", e.ip, args...)
	return out + errOut, err
}

// lockHost holds an flock on path for the life of t, so that two test
// processes on one host take turns with the fixed subnet. It waits up to
// 60 seconds.
func lockHost(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("locking %s (another process runs this test): %v", path, err)
		}
	}
	t.Cleanup(func() { f.Close() })
}
