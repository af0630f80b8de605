//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// The network of TestNetnsWireGuardCLI: a phone's namespace that reaches
// the laptop (this process, the root namespace) only over its veth, and
// an origin's namespace on another veth. Every route of the phone goes
// through its WireGuard interface, so its traffic reaches the origin only
// through `tlsresume proxy --wireguard`.
//
//	phone ns  v0 10.200.74.2/30 ─ root 10.200.74.1 (WireGuard, UDP)
//	          wg 10.73.0.2/32 fd74:6c73:7265::2/128, default routes, DNS 10.73.0.1
//	origin ns v0 10.200.75.2/30 fd74:75::2/64 ─ root 10.200.75.1 fd74:75::1
//	          openssl s_server -www on port 443, both addresses
var (
	wgnsRoot4    = netip.MustParseAddr("10.200.74.1")
	wgnsOrigin4  = netip.MustParseAddr("10.200.75.2")
	wgnsOrigin6  = netip.MustParseAddr("fd74:75::2")
	wgnsSubnets  = []netip.Prefix{netip.MustParsePrefix("10.200.74.0/30"), netip.MustParsePrefix("10.200.75.0/30"), netip.MustParsePrefix("fd74:75::/64")}
	wgnsSeq      atomic.Int32
	wgnsSession  = regexp.MustCompile(`(?m)^(New|Reused), (TLSv1\.[0-3])`)
	wgnsExchange = "GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n"
)

// wgns is the test's namespaces and tools.
type wgns struct {
	t                            *testing.T
	ip, wgGo, wg, curl, openssl  string
	phone, origin, iface, suffix string
}

// TestNetnsWireGuardCLI runs the whole CLI against a real WireGuard client:
// `tlsresume proxy --wireguard` in this process, Debian's wireguard-go and
// wg in a namespace configured from `tlsresume wireguard config`, whose
// resolver is the tunnel's DNS. curl (over IPv4 and IPv6) and openssl
// s_client (-sess_out, then -sess_in) reach an openssl s_server in another
// namespace by name; the second connection of each pair resumes on both
// legs, and the records name the source, the device and what it looked up.
func TestNetnsWireGuardCLI(t *testing.T) {
	n := newWGNS(t)
	dir := t.TempDir()
	caDir, logFile := filepath.Join(dir, "ca"), filepath.Join(dir, "conns.jsonl")
	origin := tlstest.NewCert(t, tlstest.CertOptions{Names: []string{"origin.test"}})
	originCA := filepath.Join(dir, "origin.pem")
	origin.Write(t, originCA, filepath.Join(dir, "origin-key.pem"))
	for _, a := range []string{wgnsOrigin4.String() + ":443", "[" + wgnsOrigin6.String() + "]:443"} {
		n.sServer(a, originCA, filepath.Join(dir, "origin-key.pem"))
	}
	dnsAddr := tlstest.StartDNS(t, map[string][]netip.Addr{"origin.test": {wgnsOrigin4, wgnsOrigin6}})

	p, addr := startWGProxy(t, regexp.MustCompile(`listen=\S*?(10\.200\.74\.1:\d+)\S* \S*mode=\S*wireguard`),
		"--listen", "127.0.0.1:0", "--web", "off", "--ca-dir", caDir, "--log", logFile,
		"--wireguard", wgnsRoot4.String()+":0", "--dns-upstream", dnsAddr, "--upstream-ca", originCA)
	n.client(wgConfig(t, caDir, "phone", addr))
	caFile := filepath.Join(caDir, "ca.pem")

	for _, family := range []string{"-4", "-6"} {
		out, err := n.run(n.phone, "", n.curl, family, "-sS", "--max-time", "10", "--http1.1", "-H", "Connection: close",
			"--cacert", caFile, "https://origin.test/", "https://origin.test/")
		if err != nil {
			t.Fatalf("curl %s through the tunnel: %v", family, err)
		}
		if m := wgnsSession.FindAllStringSubmatch(out, -1); len(m) != 2 || m[0][1] != "New" || m[1][1] != "Reused" {
			t.Errorf("curl %s: the origin's pages say %v; want New, then Reused", family, m)
		}
	}
	sess := filepath.Join(t.TempDir(), "sess.pem")
	for i, flag := range []string{"-sess_out", "-sess_in"} {
		out, err := n.run(n.phone, wgnsExchange, n.openssl, "s_client", "-4", "-ign_eof", "-connect", "origin.test:443",
			"-servername", "origin.test", "-CAfile", caFile, "-verify_return_error", flag, sess)
		if err != nil {
			t.Fatalf("s_client %s: %v", flag, err)
		}
		// s_client's own line, then the origin's page: the upstream leg
		// resumes from the start, with the session curl's connections left.
		m := wgnsSession.FindAllStringSubmatch(out, -1)
		if want := []string{"New", "Reused"}[i]; len(m) != 2 || m[0][1] != want || m[1][1] != "Reused" {
			t.Errorf("s_client %s: session lines %v; want %s from the client and Reused from the origin", flag, m, want)
		}
	}
	waitRecords(t, logFile, 6)
	p.stop(t)

	recs := readRecords(t, logFile)
	slices.SortFunc(recs, func(a, b *inspect.ConnRecord) int { return a.Time.Compare(b.Time) })
	for i, r := range recs {
		client, dst := "10.73.0.2:", wgnsOrigin4.String()+":443"
		if i == 2 || i == 3 {
			client, dst = "[fd74:6c73:7265::2]:", "["+wgnsOrigin6.String()+"]:443"
		}
		t.Logf("record %d: %s %s → %s sni %q dns_name %q: %s", i+1, r.ID, r.ClientAddr, r.Target, r.SNI, r.DNSName, r.Verdict.Code)
		if r.Source != inspect.SourceWireGuard || r.Device != "phone" || !strings.HasPrefix(r.ClientAddr, client) || r.Target != dst ||
			r.SNI != "origin.test" || r.DNSName != "origin.test" {
			t.Errorf("record %d: source %q device %q client %q target %q sni %q dns_name %q; want wireguard phone %s* %s origin.test origin.test",
				i+1, r.Source, r.Device, r.ClientAddr, r.Target, r.SNI, r.DNSName, client, dst)
		}
		// The first of each pair has nothing to resume on the client leg;
		// the second resumes on both legs.
		if second := i%2 == 1; r.ClientLeg == nil || r.ClientLeg.Resumed != second || second && r.Verdict.Code != inspect.CodeBothResumed {
			t.Errorf("record %d: client leg %+v, verdict %s (%s); want resumed=%v, and both_resumed for the second of a pair", i+1, r.ClientLeg, r.Verdict.Code, r.Verdict.Text, second)
		}
	}
	out, _ := n.run(n.phone, "", n.wg, "show", n.iface, "latest-handshakes")
	if !regexp.MustCompile(`\t[1-9][0-9]+\n`).MatchString(out) {
		t.Errorf("wg show latest-handshakes: %q; want a handshake", out)
	}
}

// newWGNS creates the namespaces and their veths, or ends t with
// tlstest.Unavailable when not root or a tool is missing.
func newWGNS(t *testing.T) *wgns {
	t.Helper()
	if os.Geteuid() != 0 {
		tlstest.Unavailable(t, "the WireGuard network-namespace test needs root (uid %d)", os.Geteuid())
	}
	n := &wgns{t: t, ip: tlstest.Need(t, "ip"), wgGo: tlstest.Need(t, "wireguard-go"), wg: tlstest.Need(t, "wg"),
		curl: tlstest.Need(t, "curl"), openssl: tlstest.Need(t, "openssl")}
	wgnsLock(t)
	if err := wgnsFree(); err != nil {
		t.Fatal(err)
	}
	// Unique per process and test, at most 15 bytes (IFNAMSIZ): wg's
	// control sockets in /var/run/wireguard are shared by every namespace.
	n.suffix = fmt.Sprintf("%d%c", os.Getpid(), 'a'+wgnsSeq.Add(1)%26)
	n.phone, n.origin, n.iface = "tlsresume-wp"+n.suffix, "tlsresume-wo"+n.suffix, "twg"+n.suffix
	for _, l := range []struct {
		ns, root string
		root4    string
		inner4   string
	}{{n.phone, "twp" + n.suffix, "10.200.74.1/30", "10.200.74.2/30"}, {n.origin, "two" + n.suffix, "10.200.75.1/30", "10.200.75.2/30"}} {
		n.must("netns", "add", l.ns)
		t.Cleanup(func() { n.ipq("netns", "del", l.ns); os.RemoveAll(filepath.Join("/etc/netns", l.ns)) })
		n.must("link", "add", l.root, "type", "veth", "peer", "name", "v0", "netns", l.ns)
		t.Cleanup(func() { n.ipq("link", "del", l.root) })
		n.must("addr", "add", l.root4, "dev", l.root)
		n.must("link", "set", l.root, "up")
		n.must("-n", l.ns, "addr", "add", l.inner4, "dev", "v0")
		n.must("-n", l.ns, "link", "set", "v0", "up")
		n.must("-n", l.ns, "link", "set", "lo", "up")
		if l.ns == n.origin {
			n.must("-6", "addr", "add", "fd74:75::1/64", "dev", l.root, "nodad")
			n.must("-n", l.ns, "-6", "addr", "add", "fd74:75::2/64", "dev", "v0", "nodad")
		}
	}
	return n
}

// sServer runs openssl s_server -www in the origin namespace on accept.
func (n *wgns) sServer(accept, cert, key string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := tlstest.Command(ctx, n.ip, "netns", "exec", n.origin, n.openssl, "s_server", "-www", "-accept", accept, "-cert", cert, "-key", key)
	var out tlstest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		n.t.Fatalf("starting s_server: %v", err)
	}
	n.t.Cleanup(func() { cancel(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ACCEPT"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			n.t.Fatalf("s_server on %s not ready: %s", accept, tlstest.Tail(out.String(), 600))
		}
	}
}

// client runs wireguard-go in the phone's namespace, configured from text
// (what `tlsresume wireguard config` printed), routes everything through
// it, and makes the tunnel's DNS its resolver.
func (n *wgns) client(text string) {
	t := n.t
	t.Helper()
	conf, err := tlstest.ParseWGConf(text)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := tlstest.Command(ctx, n.ip, "netns", "exec", n.phone, n.wgGo, "-f", n.iface)
	var logs tlstest.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting wireguard-go: %v", err)
	}
	sock := "/var/run/wireguard/" + n.iface + ".sock"
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		os.Remove(sock) // wireguard-go, killed, leaves its control socket behind
		if t.Failed() {
			t.Logf("wireguard-go said: %s", tlstest.Tail(logs.String(), 1500))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wireguard-go made no control socket in 10s: %s", tlstest.Tail(logs.String(), 800))
		}
	}
	// wg setconf takes wg(8)'s format: wg-quick's Address and DNS are set here.
	path := filepath.Join(t.TempDir(), "wg.conf")
	os.WriteFile(path, []byte(regexp.MustCompile(`(?m)^(Address|DNS) = .*\n`).ReplaceAllString(text, "")), 0o600)
	if _, err := n.run(n.phone, "", n.wg, "setconf", n.iface, path); err != nil {
		t.Fatalf("wg setconf: %v", err)
	}
	for _, a := range conf.Address {
		args := []string{"-n", n.phone, "addr", "add", a.String(), "dev", n.iface}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		n.must(args...)
	}
	n.must("-n", n.phone, "link", "set", n.iface, "mtu", "1420", "up")
	n.must("-n", n.phone, "route", "add", "default", "dev", n.iface)
	n.must("-n", n.phone, "-6", "route", "add", "default", "dev", n.iface)
	// `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf.
	dir := filepath.Join("/etc/netns", n.phone)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var rc strings.Builder
	for _, a := range conf.DNS {
		fmt.Fprintf(&rc, "nameserver %s\n", a)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(rc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs a tool in ns with stdin, bounded by 30 seconds, and returns its
// stdout; an error carries its stderr.
func (n *wgns) run(ns, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errOut, err := tlstest.Run(ctx, stdin, n.ip, append([]string{"netns", "exec", ns, name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, tlstest.Tail(errOut, 800))
	}
	return out, nil
}

func (n *wgns) must(args ...string) {
	n.t.Helper()
	if out, err := n.ipq(args...); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ipq runs ip(8) in the root namespace, for setup and cleanup.
func (n *wgns) ipq(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, errOut, err := tlstest.Run(ctx, "", n.ip, args...)
	return out + errOut, err
}

// wgnsLock holds a host-wide lock for the life of t: the subnets are the
// host's, so two runs of this test (two checkouts) take turns. It waits up
// to 60 seconds.
func wgnsLock(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tlsresume-wg-cli-netns.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.Close()
			t.Fatal("another process has run this test for 60s")
		}
	}
	t.Cleanup(func() { f.Close() })
}

// wgnsFree fails when an address of the test's subnets is on an interface
// of the root namespace already: a run that was killed left it.
func wgnsFree() error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			for _, s := range wgnsSubnets {
				if s.Contains(p.Addr()) {
					return fmt.Errorf("%s is in use in the root namespace already (a leftover? see `ip -br addr` and `ip netns list`)", p)
				}
			}
		}
	}
	return nil
}
