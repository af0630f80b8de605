//go:build linux

package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"golang.org/x/sys/unix"
)

// This file builds the network the TestNetns* tests run in: two network
// namespaces joined to the root namespace by veth pairs, with the test
// process (and the in-process tlsresume) as their gateway.
//
//	client ns  c0 10.233.1.2/24 fd33:1::2/64 ── root 10.233.1.1 fd33:1::1 (tlsresume)
//	origin ns  o0 10.233.2.2/24 fd33:2::2/64 ── root 10.233.2.1 fd33:2::1
//	              10.233.2.3    fd33:2::3      (a second origin address)
//
// Nothing outside these namespaces and these two subnets is touched, except
// the forwarding sysctls (restored), iptables rules naming our own veth, and
// for TPROXY an ip rule and routing table of the tests' own (nsTProxyTable).

// Addresses of the test network. They are fixed, so two runs at once on one
// host collide; newNetnsTopo refuses to start when they are in use.
var (
	nsGW4       = netip.MustParseAddr("10.233.1.1") // root side facing the client: tlsresume
	nsGW6       = netip.MustParseAddr("fd33:1::1")
	nsClient4   = netip.MustParseAddr("10.233.1.2")
	nsClient6   = netip.MustParseAddr("fd33:1::2")
	nsOriginGW4 = netip.MustParseAddr("10.233.2.1")
	nsOriginGW6 = netip.MustParseAddr("fd33:2::1")
	nsOrigin4   = netip.MustParseAddr("10.233.2.2") // openssl s_server
	nsOrigin6   = netip.MustParseAddr("fd33:2::2")
	nsOriginB4  = netip.MustParseAddr("10.233.2.3") // the Go origin
	nsOriginB6  = netip.MustParseAddr("fd33:2::3")

	nsClientNets = []netip.Prefix{netip.MustParsePrefix("10.233.1.0/24"), netip.MustParsePrefix("fd33:1::/64")}
	nsAllNets    = append([]netip.Prefix{netip.MustParsePrefix("10.233.2.0/24"), netip.MustParsePrefix("fd33:2::/64")}, nsClientNets...)
)

// netnsTopo is the test network. Everything it creates is removed by tb's
// cleanups, in reverse order, even when the test fails.
type netnsTopo struct {
	tb                      testing.TB
	id                      string // unique per topology in this run: pid and a counter
	client, origin          string // namespace names
	clientLink, originLink  string // root-side veth names
	ip, iptables, ip6tables string
	clientDial              *nsDialer // dials from inside the client namespace
}

var netnsSeq atomic.Int32

// newNetnsTopo builds the network, or skips tb when not root or when ip or
// iptables is missing.
func newNetnsTopo(tb testing.TB) *netnsTopo {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tlstest.Unavailable(tb, "network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		tlstest.Unavailable(tb, "network-namespace tests need root (uid %d)", os.Geteuid())
	}
	n := &netnsTopo{tb: tb, ip: tlstest.Need(tb, "ip"), iptables: tlstest.Need(tb, "iptables"), ip6tables: tlstest.Need(tb, "ip6tables")}
	n.id = fmt.Sprintf("%d%c", os.Getpid(), 'a'+netnsSeq.Add(1)%26)
	n.client, n.origin = "tlsresume-c"+n.id, "tlsresume-o"+n.id
	n.clientLink, n.originLink = "trc"+n.id, "tro"+n.id // at most 15 bytes (IFNAMSIZ)
	netnsLock(tb)
	n.reap()
	if err := netnsFree(); err != nil {
		tb.Fatal(err)
	}

	for _, ns := range []string{n.client, n.origin} {
		n.must("netns", "add", ns)
		tb.Cleanup(func() { n.try("netns", "del", ns) })
	}
	n.link(n.clientLink, n.client, "c0", nsGW4, nsGW6, nsClient4, nsClient6)
	n.link(n.originLink, n.origin, "o0", nsOriginGW4, nsOriginGW6, nsOrigin4, nsOrigin6)
	n.must("-n", n.origin, "addr", "add", nsOriginB4.String()+"/24", "dev", "o0")
	n.must("-n", n.origin, "-6", "addr", "add", nsOriginB6.String()+"/64", "dev", "o0", "nodad")
	n.forwarding()

	d, err := newNSDialer(n.client)
	if err != nil {
		tb.Fatalf("entering %s: %v", n.client, err)
	}
	tb.Cleanup(d.close)
	n.clientDial = d
	return n
}

// netnsLock takes a host-wide lock for the life of tb: the subnets and the
// forwarding sysctls are the host's, so two test processes (two packages'
// runs, or two checkouts) must take turns. It waits up to 60 seconds.
func netnsLock(tb testing.TB) {
	tb.Helper()
	path := filepath.Join(os.TempDir(), "tlsresume-netns.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			tb.Fatalf("locking %s (another process is running the network-namespace tests): %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Cleanup(func() { f.Close() }) // closing the last descriptor releases the lock
}

// netnsStateFile holds the forwarding values a run found, until it has
// restored them.
var netnsStateFile = filepath.Join(os.TempDir(), "tlsresume-netns.state")

type netnsState struct {
	PID        int
	Forwarding map[string]string // sysctl path → value found
}

// restore writes back the forwarding values, in order (the global switches
// first, then each interface).
func (st netnsState) restore(order []string) {
	for _, p := range order {
		if v, ok := st.Forwarding[p]; ok {
			os.WriteFile(p, []byte(v), 0o644) // an interface deleted since is gone: nothing to restore
		}
	}
}

var (
	netnsName    = regexp.MustCompile(`^tlsresume-[co]((\d+)[a-z])$`)
	netnsComment = regexp.MustCompile(`--comment "tlsresume test ((\d+)[a-z])"`)
)

// reap undoes what an earlier run left when it was killed before its
// cleanups (SIGKILL, or `go test -timeout`, which exits without them): its
// namespaces, veths, iptables rules (REDIRECT, TPROXY, CT), policy
// routes and resolv.conf, found by the names
// this file gives them, and its forwarding values. Only objects whose
// creating process is gone are touched.
func (n *netnsTopo) reap() {
	dead := func(pid string) bool {
		p, _ := strconv.Atoi(pid)
		return p > 0 && p != os.Getpid() && errors.Is(syscall.Kill(p, 0), syscall.ESRCH)
	}
	out, _ := n.exec(n.ip, "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(line, " ")
		if m := netnsName.FindStringSubmatch(name); m != nil && dead(m[2]) {
			n.tb.Logf("removing %s, left by process %s", name, m[2])
			n.try("netns", "del", name)
			n.try("link", "del", "trc"+m[1])
			n.try("link", "del", "tro"+m[1])
			os.RemoveAll(filepath.Join("/etc/netns", name))
		}
	}
	for _, tool := range []string{n.iptables, n.ip6tables} {
		for _, table := range []string{"nat", "mangle", "raw"} {
			out, _ := n.exec(tool, "-w", "5", "-t", table, "-S", "PREROUTING")
			for _, line := range strings.Split(out, "\n") {
				m := netnsComment.FindStringSubmatch(line)
				if m == nil || !dead(m[2]) || !strings.HasPrefix(line, "-A ") {
					continue
				}
				// The same rule with -D deletes it; the quoted comment is one argument.
				args := strings.Fields(strings.Replace(line, m[0], "--comment \x00", 1))
				args[0] = "-D"
				args[slices.Index(args, "\x00")] = "tlsresume test " + m[1]
				n.exec(tool, append([]string{"-w", "5", "-t", table}, args...)...)
			}
		}
	}
	// tproxy's policy routing carries no process id; holding the lock, any
	// of it that is there was left by a run that is gone.
	for _, family := range []string{"-4", "-6"} {
		for {
			if _, err := n.exec(n.ip, family, "rule", "del", "fwmark", nsTProxyMark, "lookup", nsTProxyTable); err != nil {
				break
			}
		}
		n.exec(n.ip, family, "route", "flush", "table", nsTProxyTable)
	}
	if b, err := os.ReadFile(netnsStateFile); err == nil {
		var st netnsState
		if json.Unmarshal(b, &st) == nil && dead(strconv.Itoa(st.PID)) {
			n.tb.Logf("restoring the forwarding sysctls process %d changed", st.PID)
			// The global switches first: writing them resets every interface.
			st.restore(append([]string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"},
				slices.Sorted(maps.Keys(st.Forwarding))...))
			os.Remove(netnsStateFile)
		}
	}
}

// netnsFree fails when an address of the test subnets is already on an
// interface of the root namespace: another run, or one that was killed.
func netnsFree() error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return err
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		for _, n := range nsAllNets {
			if n.Contains(p.Addr()) {
				return fmt.Errorf("%s is already in use in the root namespace (another run of these tests, or a leftover: see `ip -br addr` and `ip netns list`)", p)
			}
		}
	}
	return nil
}

// link creates a veth pair from the root namespace (root, with gw4/gw6) into
// ns (inner, with addr4/addr6), routed by default through the root side.
func (n *netnsTopo) link(root, ns, inner string, gw4, gw6, addr4, addr6 netip.Addr) {
	n.must("link", "add", root, "type", "veth", "peer", "name", inner, "netns", ns)
	n.tb.Cleanup(func() { n.try("link", "del", root) }) // gone already when its namespace was deleted
	// nodad: the addresses are usable at once, not after duplicate address detection.
	n.must("addr", "add", gw4.String()+"/24", "dev", root)
	n.must("-6", "addr", "add", gw6.String()+"/64", "dev", root, "nodad")
	n.must("link", "set", root, "up")
	n.must("-n", ns, "link", "set", "lo", "up")
	n.must("-n", ns, "addr", "add", addr4.String()+"/24", "dev", inner)
	n.must("-n", ns, "-6", "addr", "add", addr6.String()+"/64", "dev", inner, "nodad")
	n.must("-n", ns, "link", "set", inner, "up")
	n.must("-n", ns, "route", "add", "default", "via", gw4.String())
	n.must("-n", ns, "-6", "route", "add", "default", "via", gw6.String())
}

// forwarding makes the root namespace a router for the test's lifetime:
// net.ipv4.ip_forward and net.ipv6.conf.all.forwarding, restored after.
// Writing either also rewrites every interface's own forwarding value
// (devinet_sysctl_forward, addrconf_fixup_forwarding), so those are saved
// and restored too.
func (n *netnsTopo) forwarding() {
	globals := []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}
	saved := slices.Clone(globals)
	for _, glob := range []string{"/proc/sys/net/ipv4/conf/*/forwarding", "/proc/sys/net/ipv6/conf/*/forwarding"} {
		m, _ := filepath.Glob(glob)
		saved = append(saved, m...)
	}
	st := netnsState{PID: os.Getpid(), Forwarding: map[string]string{}}
	for _, p := range saved {
		if b, err := os.ReadFile(p); err == nil {
			st.Forwarding[p] = string(b)
		}
	}
	// Kept on disk until restored, for reap should this process be killed.
	b, _ := json.Marshal(st)
	if err := os.WriteFile(netnsStateFile, b, 0o600); err != nil {
		n.tb.Fatal(err)
	}
	n.tb.Cleanup(func() { os.Remove(netnsStateFile) })
	n.tb.Cleanup(func() { st.restore(saved) })
	for _, p := range globals {
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			n.tb.Fatalf("enabling forwarding: %v", err)
		}
	}
}

// redirect adds, in the root namespace, the rule a transparent proxy
// needs: proto ("tcp", "udp") to dport arriving from the client namespace
// goes to toPort on the incoming interface's primary address
// (iptables-extensions(8), REDIRECT). The rule is deleted when tb ends.
func (n *netnsTopo) redirect(tb testing.TB, v6 bool, proto string, dport, toPort int) {
	tb.Helper()
	n.rule(tb, v6, "nat", "-p", proto, "--dport", strconv.Itoa(dport), "-j", "REDIRECT", "--to-ports", strconv.Itoa(toPort))
}

// notrack exempts TCP to dport arriving from the client namespace from
// connection tracking (iptables-extensions(8), CT --notrack), until tb ends.
func (n *netnsTopo) notrack(tb testing.TB, v6 bool, dport int) {
	tb.Helper()
	n.rule(tb, v6, "raw", "-p", "tcp", "--dport", strconv.Itoa(dport), "-j", "CT", "--notrack")
}

// rule appends to table's PREROUTING chain a rule for packets arriving from
// the client namespace, tagged with this run's comment for reap, and
// deletes it when tb ends.
func (n *netnsTopo) rule(tb testing.TB, v6 bool, table string, match ...string) {
	tb.Helper()
	tool := n.iptables
	if v6 {
		tool = n.ip6tables
	}
	rule := append([]string{"PREROUTING", "-i", n.clientLink, "-m", "comment", "--comment", "tlsresume test " + n.id}, match...)
	if out, err := n.exec(tool, append([]string{"-w", "5", "-t", table, "-A"}, rule...)...); err != nil {
		tb.Fatalf("%s -t %s -A %s: %v: %s", tool, table, strings.Join(rule, " "), err, out)
	}
	tb.Cleanup(func() {
		if out, err := n.exec(tool, append([]string{"-w", "5", "-t", table, "-D"}, rule...)...); err != nil {
			tb.Errorf("removing %s -t %s %s: %v: %s", tool, table, strings.Join(rule, " "), err, out)
		}
	})
}

// The policy routing TPROXY needs (tproxy.rst): packets TPROXY marked are
// looked up in a table that delivers everything locally. A whole mark
// value (no mask: only packets marked exactly so) and a table number of our
// own, so that the host's traffic and rules are not touched.
const (
	nsTProxyMark  = "0x233"
	nsTProxyTable = "233"
)

// tproxy is redirect's TPROXY counterpart: TCP to dport arriving from the
// client namespace is delivered, destination unchanged, to the transparent
// socket listening on toPort at the incoming interface's address
// (iptables-extensions(8), TPROXY), and marked so that the policy route
// takes it to the local stack. Rule, ip rule and route are deleted when tb
// ends.
func (n *netnsTopo) tproxy(tb testing.TB, v6 bool, dport, toPort int) {
	tb.Helper()
	family, all := "-4", "0.0.0.0/0"
	if v6 {
		family, all = "-6", "::/0"
	}
	for _, args := range [][]string{
		{family, "rule", "add", "fwmark", nsTProxyMark, "lookup", nsTProxyTable},
		{family, "route", "add", "local", all, "dev", "lo", "table", nsTProxyTable},
	} {
		if out, err := n.exec(n.ip, args...); err != nil {
			tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		tb.Cleanup(func() {
			del := slices.Clone(args)
			del[2] = "del"
			if out, err := n.exec(n.ip, del...); err != nil {
				tb.Errorf("ip %s: %v: %s", strings.Join(del, " "), err, out)
			}
		})
	}
	n.rule(tb, v6, "mangle", "-p", "tcp", "--dport", strconv.Itoa(dport),
		"-j", "TPROXY", "--on-port", strconv.Itoa(toPort), "--tproxy-mark", nsTProxyMark)
}

// resolvConf gives ns its own /etc/resolv.conf: `ip netns exec` bind-mounts
// /etc/netns/NAME/* over /etc/* (ip-netns(8)).
func (n *netnsTopo) resolvConf(ns, content string) {
	base := "/etc/netns"
	_, err := os.Stat(base)
	createdBase := errors.Is(err, os.ErrNotExist)
	dir := filepath.Join(base, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.tb.Fatal(err)
	}
	n.tb.Cleanup(func() {
		os.RemoveAll(dir)
		if createdBase {
			os.Remove(base) // only when empty: another namespace may use it now
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		n.tb.Fatal(err)
	}
}

// must runs ip with args, failing the test on error.
func (n *netnsTopo) must(args ...string) {
	n.tb.Helper()
	if out, err := n.exec(n.ip, args...); err != nil {
		n.tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// try runs ip with args for cleanup, where the object may be gone already.
func (n *netnsTopo) try(args ...string) { n.exec(n.ip, args...) }

// exec runs a setup command, bounded to 10 seconds.
func (n *netnsTopo) exec(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// nsCommand runs name inside namespace ns (`ip netns exec`), bounded by
// ctx, in its own process group so that everything it spawns dies with it.
func (n *netnsTopo) nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.ip, append([]string{"netns", "exec", ns, name}, args...)...)
	// Pdeathsig: servers die with this process even when it is killed
	// before its cleanups (it survives ip's exec of name: prctl(2)).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// run runs name in ns with stdin and returns its stdout; a non-zero exit
// is returned as an error carrying stderr.
func (n *netnsTopo) run(ctx context.Context, ns, stdin, name string, args ...string) (string, string, error) {
	cmd := n.nsCommand(ctx, ns, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s in %s: %w (stderr: %s)", filepath.Base(name), strings.Join(args, " "), ns, err, tlstest.Tail(errb.String(), 800))
	}
	return out.String(), errb.String(), err
}

// runUntil runs name in ns, writing stdin and keeping it open until
// done(stdout so far) holds or 5 seconds pass: OpenSSL's clients end at end
// of input, and a TLS 1.3 session ticket (or the early-data verdict)
// arrives after the handshake.
func (n *netnsTopo) runUntil(ctx context.Context, ns, stdin string, done func(string) bool, name string, args ...string) (string, error) {
	cmd := n.nsCommand(ctx, ns, name, args...)
	out, errb := &tlstest.Buffer{}, &tlstest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	io.WriteString(in, stdin)
	for deadline := time.Now().Add(5 * time.Second); !done(out.String()) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return out.String(), fmt.Errorf("%s %s in %s: %w (stderr: %s)", filepath.Base(name), strings.Join(args, " "), ns, err, tlstest.Tail(errb.String(), 800))
	}
	return out.String(), nil
}
