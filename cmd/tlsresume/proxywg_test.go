package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// cliProxy is `tlsresume proxy` running in this process until stop.
type cliProxy struct {
	stderr *tlstest.Buffer
	cancel context.CancelFunc
	exited chan int
}

// startCLIProxy runs `tlsresume proxy ARGS` and waits for its console to
// match ready, whose first group it returns.
func startWGProxy(t *testing.T, ready *regexp.Regexp, args ...string) (*cliProxy, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &cliProxy{stderr: &tlstest.Buffer{}, cancel: cancel, exited: make(chan int, 1)}
	go func() { p.exited <- run(ctx, append([]string{"proxy"}, args...), io.Discard, p.stderr) }()
	t.Cleanup(func() { p.stop(t) })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := ready.FindStringSubmatch(p.stderr.String()); m != nil {
			return p, m[1]
		}
		select {
		case code := <-p.exited:
			p.exited <- code
			t.Fatalf("tlsresume proxy exited %d: %s", code, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s on the console within 10s: %s", ready, p.stderr.String())
		}
	}
}

// stop ends the proxy (as SIGINT does) and checks it exited 0; it may be
// called more than once.
func (p *cliProxy) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.exited:
		if code != 0 {
			t.Errorf("tlsresume proxy exited %d: %s", code, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("tlsresume proxy still running 15s after it was stopped")
	}
	p.exited <- 0 // for a later stop
}

// wgListenRE finds the WireGuard socket's address on the console.
var wgListenRE = regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)\S* \S*mode=\S*wireguard`)

// tlsOriginCLI is a crypto/tls origin on 127.0.0.1 that issues tickets and
// writes "resumed=BOOL\n"; its CA certificate is in the returned file.
func tlsOriginCLI(t *testing.T, dir string) (netip.AddrPort, string) {
	t.Helper()
	cert := tlstest.NewCert(t, tlstest.CertOptions{Names: []string{"origin.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	caFile := filepath.Join(dir, "origin.pem")
	cert.Write(t, caFile, filepath.Join(dir, "origin-key.pem"))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if tc := c.(*tls.Conn); tc.Handshake() == nil {
					fmt.Fprintf(tc, "resumed=%v\n", tc.ConnectionState().DidResume)
					io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), caFile
}

// tlsThrough makes one TLS connection from the peer to dst and returns
// whether the client resumed and the origin's line.
func tlsThrough(t *testing.T, p *tlstest.WGPeer, dst netip.AddrPort, roots *x509.CertPool, cache tls.ClientSessionCache) (bool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.DialTCP(ctx, dst)
	if err != nil {
		t.Fatalf("dialling %s through the tunnel: %v", dst, err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "origin.test", RootCAs: roots, ClientSessionCache: cache})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	tc.Write([]byte("hello\n")) // the proxy then relays at once rather than wait for HTTP
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil {
		t.Fatalf("TLS to %s through the tunnel: %v", dst, err)
	}
	return tc.ConnectionState().DidResume, strings.TrimSpace(line)
}

// wgConfig runs `tlsresume wireguard config` and returns the text.
func wgConfig(t *testing.T, caDir, peer, endpoint string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"wireguard", "config", "--peer", peer, "--endpoint", endpoint, "--ca-dir", caDir}, &stdout, &stderr); code != 0 {
		t.Fatalf("tlsresume wireguard config: exit %d: %s", code, stderr.String())
	}
	return stdout.String()
}

// TestProxyWireGuard: `tlsresume proxy --wireguard` with two --peer names
// says on its console which endpoint it chose, where each device's
// configuration is, and shows the first's QR code; a device configured
// from `tlsresume wireguard config` reaches a loopback origin
// (--wireguard-local) and its second connection resumes on both legs. After
// a restart on the same port, the same configuration still works: the keys
// were kept, and so were the ticket keys and the upstream sessions, so the
// next connection resumes on both legs too.
func TestProxyWireGuard(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	logFile := filepath.Join(dir, "conns.jsonl")
	origin, originCA := tlsOriginCLI(t, dir)
	args := func(wg string) []string {
		return []string{"--listen", "127.0.0.1:0", "--web", "off", "--ca-dir", caDir, "--log", logFile,
			"--wireguard", wg, "--wireguard-local", "--peer", "phone", "--peer", "tablet",
			"--upstream-ca", originCA, "--upstream-cache-file", filepath.Join(dir, "upstream.cache"), "--dns-upstream", "127.0.0.1:1"}
	}
	p, addr := startWGProxy(t, wgListenRE, args("127.0.0.1:0")...)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), "Scan it"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no QR code on the console: %s", p.stderr.String())
		}
	}
	for _, want := range []string{
		"wireguard endpoint " + addr + " (given)",
		"WireGuard device phone (10.73.0.2, fd74:6c73:7265::2): its configuration: tlsresume wireguard config --peer phone --endpoint " + addr + " --ca-dir " + caDir + " --qr",
		"WireGuard device tablet (10.73.0.3, fd74:6c73:7265::3)",
		"█", "Scan it with the WireGuard app on device phone",
	} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("the console lacks %q:\n%s", want, p.stderr.String())
		}
	}
	ca, err := certs.Load(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	text := wgConfig(t, caDir, "phone", addr)
	cache := tls.NewLRUClientSessionCache(4)
	peer := tlstest.StartWGPeer(t, text, addr)
	for i := range 2 {
		if resumed, said := tlsThrough(t, peer, origin, roots, cache); resumed != (i == 1) || said != fmt.Sprintf("resumed=%v", i == 1) {
			t.Errorf("connection %d: client resumed %v, origin said %q", i+1, resumed, said)
		}
	}
	waitRecords(t, logFile, 2) // both connections closed, before the device goes
	peer.Close()
	p.stop(t)

	p, _ = startWGProxy(t, wgListenRE, args(addr)...)
	if again := wgConfig(t, caDir, "phone", addr); again != text {
		t.Errorf("after a restart the configuration changed:\n%s\nwas\n%s", again, text)
	}
	peer = tlstest.StartWGPeer(t, text, addr) // the device as configured the first time
	if resumed, said := tlsThrough(t, peer, origin, roots, cache); !resumed || said != "resumed=true" {
		t.Errorf("after a restart: client resumed %v, origin said %q; want both legs resumed", resumed, said)
	}
	waitRecords(t, logFile, 3)
	p.stop(t)

	recs := readRecords(t, logFile)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	slices.SortFunc(recs, func(a, b *inspect.ConnRecord) int { return a.Time.Compare(b.Time) }) // in the order they opened
	for i, r := range recs {
		if r.Source != inspect.SourceWireGuard || r.Device != "phone" || r.Target != origin.String() || !strings.HasPrefix(r.ClientAddr, "10.73.0.2:") {
			t.Errorf("record %d: source %q device %q target %q client %q", i+1, r.Source, r.Device, r.Target, r.ClientAddr)
		}
		if want := inspect.CodeBothResumed; i > 0 && r.Verdict.Code != want {
			t.Errorf("record %d: verdict %s (%s), want %s", i+1, r.Verdict.Code, r.Verdict.Text, want)
		}
	}
}

// waitRecords waits up to 10 seconds for n records in a --log file.
func waitRecords(t *testing.T, path string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if bytes.Count(b, []byte("\n")) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records in %s after 10s, want %d", bytes.Count(b, []byte("\n")), path, n)
		}
	}
}

// readRecords reads a --log file.
func readRecords(t *testing.T, path string) []*inspect.ConnRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, bad, _, err := inspect.ReadLog(f)
	if err != nil || bad > 0 {
		t.Fatalf("reading %s: %d bad lines, %v", path, bad, err)
	}
	return recs
}

// TestWireGuardFlags: WireGuard's flags are checked before anything is
// bound; a taken WireGuard port fails the start before the CA directory
// (and the WireGuard keys in it) is created; --peer takes a YAML list.
func TestWireGuardFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--peer", "tablet"}, "--peer needs --wireguard ADDRESS"},
		{[]string{"--wireguard-local"}, "--wireguard-local needs --wireguard"},
		{[]string{"--wireguard-endpoint", "192.0.2.1:51820"}, "--wireguard-endpoint needs --wireguard"},
		{[]string{"--wireguard", "laptop:51820"}, "want an IP address before the port"},
		{[]string{"--wireguard", "0.0.0.0"}, "want ip:port"},
		{[]string{"--wireguard", ":51820", "--wireguard-endpoint", "nohost"}, "--wireguard-endpoint"},
		{[]string{"--wireguard", ":51820", "--peer", "Phone!"}, "device name"},
		{[]string{"--quic", "block"}, "--quic block needs --wireguard ADDRESS"},
		{[]string{"--wireguard", ":51820", "--quic", "drop"}, `--quic "drop": want pass or block`},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"proxy", "--listen", "127.0.0.1:0", "--web", "off"}, tt.args...), io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}

	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	home := filepath.Join(t.TempDir(), "home")
	t.Setenv("TLSRESUME_HOME", home)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off", "--wireguard", taken.LocalAddr().String()}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--wireguard") || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("WireGuard port taken: exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("%s exists after a start that failed on the WireGuard port (%v)", home, err)
	}

	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("wireguard: 0.0.0.0:51820\npeer: [phone, tablet]\nwireguard-local: true\n"), 0o600)
	fs := flagSetForTest()
	if err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("peer").Value.String(); got != "phone,tablet" {
		t.Errorf("peer from YAML = %q", got)
	}
}
