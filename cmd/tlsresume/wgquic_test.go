//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// quicHost is the HTTP/3 origin's name, resolved through the tunnel's DNS.
const quicHost = "quic.test"

// TestNetnsWireGuardQUICChromium runs the whole CLI, `tlsresume proxy
// --wireguard` with --quic pass (the default), against Debian's
// wireguard-go in a phone's namespace (as TestNetnsWireGuardCLI) and
// headless Chromium in it, forced to HTTP/3 (--origin-to-force-quic-on)
// against a quic-go HTTP/3 origin in another namespace. Chromium loads two
// pages in one browser; the origin closes the first connection when idle,
// so the second page needs a connection of its own, which resumes with
// the first one's ticket. The proxy relays the QUIC untouched and records
// both connections live, the second with the PSK offered and taken
// (server_hello.resumed). A capture of the same datagrams, between the
// proxy and the origin, read by tshark's QUIC dissector (which decrypts
// the Initials on its own) and by `tlsresume inspect`'s reader, agrees
// with the live records field by field.
func TestNetnsWireGuardQUICChromium(t *testing.T) {
	n := newWGNS(t)
	chromium := tlstest.Need(t, "chromium")
	tshark := tlstest.Need(t, "tshark")
	tcpdump := tlstest.Need(t, "tcpdump")
	dir := t.TempDir()
	caDir, logFile := filepath.Join(dir, "ca"), filepath.Join(dir, "conns.jsonl")
	cert := tlstest.NewCert(t, tlstest.CertOptions{Names: []string{quicHost}})
	o := startNSH3Origin(t, n.origin, netip.AddrPortFrom(wgnsOrigin4, 443), cert.TLS)
	capPath := filepath.Join(dir, "quic.pcap")
	stopCapture := ifaceCapture(t, tcpdump, "two"+n.suffix, "udp port 443", capPath)
	dnsAddr := tlstest.StartDNS(t, map[string][]netip.Addr{quicHost: {wgnsOrigin4}})

	p, addr := startWGProxy(t, regexp.MustCompile(`listen=\S*?(10\.200\.74\.1:\d+)\S* \S*mode=\S*wireguard`),
		"--listen", "127.0.0.1:0", "--web", "off", "--ca-dir", caDir, "--log", logFile, "--grace", "1s",
		"--wireguard", wgnsRoot4.String()+":0", "--dns-upstream", dnsAddr, "--quic", "pass")
	n.client(wgConfig(t, caDir, "phone", addr))

	pages, err := loadTwiceIn(t, chromium, n.ip, n.phone, cert.TLS, filepath.Join(dir, "profile"))
	if err != nil {
		t.Fatalf("chromium in the phone's namespace: %v (pages %q)", err, pages)
	}
	for i, page := range pages {
		if !strings.Contains(page, "over HTTP/3") {
			t.Errorf("page %d was not served over HTTP/3: %q", i+1, page)
		}
	}
	// A QUIC connection's record is published when its flow ends: stopping
	// the proxy ends them after --grace.
	p.stop(t)
	stopCapture()
	console := p.stderr.String()

	var recs []*inspect.ConnRecord
	for _, r := range readRecords(t, logFile) {
		if r.Transport == inspect.TransportNameQUIC {
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *inspect.ConnRecord) int { return a.Time.Compare(b.Time) })
	if len(recs) != 2 {
		t.Fatalf("%d QUIC records, want 2 (the origin saw %d connections): %s", len(recs), len(o.connections()), console)
	}
	for i, r := range recs {
		resumed := i == 1
		t.Logf("record %s: %s sni %q dns_name %q: %s (%s)", r.ID, r.ClientAddr, r.SNI, r.DNSName, r.Verdict.Code, r.Verdict.Text)
		if r.Source != inspect.SourceWireGuard || r.Device != "phone" || r.DNSName != quicHost || r.SNI != quicHost ||
			r.Target != wgnsOrigin4.String()+":443" || !strings.HasPrefix(r.ClientAddr, "10.73.0.2:") ||
			r.Passthrough != "QUIC relayed untouched (--quic pass)" {
			t.Errorf("record %d: source %q device %q dns_name %q sni %q target %q client %q passthrough %q", i+1,
				r.Source, r.Device, r.DNSName, r.SNI, r.Target, r.ClientAddr, r.Passthrough)
		}
		ch, sh := r.ClientHello, r.ServerHello
		if ch == nil || sh == nil || !strings.HasPrefix(ch.JA4, "q13") || ch.PreSharedKey.Offered != resumed || !sh.Complete || sh.Resumed != resumed {
			t.Fatalf("record %d: hello %+v answer %+v; want a q JA4, and the PSK offered and taken: %v", i+1, ch, sh, resumed)
		}
		want := map[bool]inspect.VerdictCode{false: inspect.CodePassthroughNotResumed, true: inspect.CodePassthroughResumed}[resumed]
		if r.Verdict.Code != want {
			t.Errorf("record %d: verdict %s, want %s", i+1, r.Verdict.Code, want)
		}
		line := regexp.MustCompile(`(?m)^.*\b` + r.ID + ` 10\.73\.0\.2 → quic\.test:443  QUIC offered .*$`).FindString(console)
		wantWords := map[bool]string{false: "origin did a full handshake", true: "origin resumed the client"}[resumed]
		if !strings.Contains(line, "relayed untouched  "+wantWords+"  = "+string(want)) {
			t.Errorf("record %d's console line %q; want QUIC, relayed untouched, %q", i+1, line, wantWords)
		}
	}
	if got := o.connections(); len(got) != 2 || got[0] || !got[1] {
		t.Errorf("the origin resumed %v; want two connections, the second resumed", got)
	}
	checkQUICRecordsAgainstCapture(t, tshark, capPath, recs)
}

// checkQUICRecordsAgainstCapture reads the capture with tshark's QUIC
// dissector and with inspect.ReadCapture, and checks each live record's
// hello, answer and QUIC facts against both, by the hello's random.
func checkQUICRecordsAgainstCapture(t *testing.T, tshark, capPath string, recs []*inspect.ConnRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := tlstest.DissectQUIC(ctx, tshark, capPath, 443)
	if err != nil {
		t.Fatal(err)
	}
	byRandom := map[string]*tlstest.Hello{}
	versions := map[string]*tlstest.QUICPacket{}
	for _, conn := range tlstest.Connections(msgs, 443) {
		for _, h := range conn {
			byRandom[h.CH.Random] = h
		}
	}
	for _, m := range msgs {
		if m.Type == tlstest.TypeClientHello && m.QUIC != nil {
			versions[m.ClientHello().Random] = m.QUIC
		}
	}
	fromCapture := map[string]*inspect.Record{}
	f, err := os.Open(capPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := inspect.ReadCapture(f, func(r *inspect.Record) error {
		if r.ClientHello != nil {
			fromCapture[r.ClientHello.Random] = r
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		h, q := byRandom[r.ClientHello.Random], versions[r.ClientHello.Random]
		if h == nil || q == nil {
			t.Errorf("record %d: tshark saw no ClientHello with random %s in the capture", i+1, r.ClientHello.Random)
			continue
		}
		ja4, _ := h.CH.JA4()
		ch := r.ClientHello
		if ch.JA4 != ja4 || ch.PreSharedKey.Offered != h.CH.Has(41) || ch.EarlyData != h.CH.Has(42) || r.SNI != h.CH.SNI ||
			!slices.Equal(ch.ALPN, h.CH.ALPN) || string(ch.Attempt) != h.Attempt() {
			t.Errorf("record %d: ja4 %s psk %v early_data %v sni %q alpn %v attempt %s; tshark: %s %v %v %q %v %s", i+1,
				ch.JA4, ch.PreSharedKey.Offered, ch.EarlyData, r.SNI, ch.ALPN, ch.Attempt,
				ja4, h.CH.Has(41), h.CH.Has(42), h.CH.SNI, h.CH.ALPN, h.Attempt())
		}
		if h.SH == nil || r.ServerHello.Resumed != h.Resumed() || r.ServerHello.CipherSuite != h.SH.CipherSuite {
			t.Errorf("record %d: resumed %v suite %#x; tshark's answer %+v resumed %v", i+1, r.ServerHello.Resumed, r.ServerHello.CipherSuite, h.SH, h.Resumed())
		}
		if r.QUIC.Version != fmt.Sprintf("%08x", q.Version) || r.QUIC.SCID != q.SCID {
			t.Errorf("record %d: quic version %s scid %s; tshark %08x %s", i+1, r.QUIC.Version, r.QUIC.SCID, q.Version, q.SCID)
		}
		c := fromCapture[ch.Random]
		if c == nil {
			t.Errorf("record %d: inspect's capture reader has no record of its hello", i+1)
			continue
		}
		for _, part := range []struct {
			name       string
			live, read any
		}{{"client_hello", r.ClientHello, c.ClientHello}, {"server_hello", r.ServerHello, c.ServerHello},
			{"quic", r.QUIC, c.QUIC}, {"early_data_sent", r.EarlyDataSent, c.EarlyDataSent}} {
			a, _ := json.Marshal(part.live)
			b, _ := json.Marshal(part.read)
			if string(a) != string(b) {
				t.Errorf("record %d: %s live\n%s\nfrom the capture\n%s", i+1, part.name, a, b)
			}
		}
	}
}

// nsH3Origin is a quic-go HTTP/3 origin whose socket is in another
// namespace; it closes a connection 300 ms after its last request, so
// that a browser's next page load needs a new connection.
type nsH3Origin struct {
	mu      sync.Mutex
	resumed []bool // per connection, in order: the origin's own verdict
}

func (o *nsH3Origin) connections() []bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.resumed)
}

func startNSH3Origin(t *testing.T, ns string, addr netip.AddrPort, cert tls.Certificate) *nsH3Origin {
	t.Helper()
	udp := listenUDPIn(t, ns, addr)
	o := &nsH3Origin{}
	srv := &http3.Server{
		TLSConfig:   http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
		IdleTimeout: 300 * time.Millisecond,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			o.mu.Lock()
			o.resumed = append(o.resumed, c.ConnectionState().TLS.DidResume)
			o.mu.Unlock()
			return ctx
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprintf(w, "<!doctype html><title>h3</title><p id=p>%s over %s</p>", r.URL.Path, r.Proto)
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

// listenUDPIn binds a UDP socket to addr in the named network namespace:
// the socket is made on a thread moved into it, and stays there
// (network_namespaces(7)).
func listenUDPIn(t *testing.T, ns string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	type result struct {
		c   *net.UDPConn
		err error
	}
	done := make(chan result)
	go func() {
		// Never unlocked: when this goroutine returns, the runtime ends its
		// thread instead of reusing it in the wrong namespace
		// (runtime.LockOSThread).
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, fmt.Errorf("entering network namespace %s: %w", ns, err)}
			return
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.c
}

// ifaceCapture runs tcpdump on iface of the root namespace, writing what
// filter takes to path, and returns once it captures; stop ends it.
func ifaceCapture(t *testing.T, tcpdump, iface, filter, path string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	// -U and --immediate-mode: each packet is written as it comes, so
	// SIGINT loses none (see tlstest.StartCapture).
	cmd := tlstest.Command(ctx, tcpdump, "-i", iface, "-n", "-s", "0", "-B", "32768", "-U", "--immediate-mode", "-w", path, filter)
	var stderr tlstest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting tcpdump: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				tlstest.KillGroup(cmd)
				<-exited
			}
			cancel()
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("tcpdump on %s exited: %s", iface, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump on %s not capturing after 10s: %s", iface, stderr.String())
		}
	}
	return stop
}

// loadTwiceIn has one headless Chromium in the named namespace, forced to
// HTTP/3 for quicHost:443 and trusting the origin's key, load /first and
// then, after the origin closed that connection, /second; it returns the
// two pages' text. It runs as `ip netns exec NS chromium …`, which keeps
// the DevTools pipe (file descriptors 3 and 4) chromedp gives it.
func loadTwiceIn(t *testing.T, chromium, ip, ns string, cert tls.Certificate, profile string) ([]string, error) {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(profile),
		chromedp.Flag("origin-to-force-quic-on", quicHost+":443"),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append([]string{ip, "netns", "exec", ns}, cmd.Args...)
			cmd.Path = ip
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The browser lives as long as the context of its first run, which must
	// carry no deadline; a watchdog bounds it instead.
	watchdog := time.AfterFunc(60*time.Second, cancel)
	defer watchdog.Stop()
	var pages []string
	for i, path := range []string{"/first", "/second"} {
		if i > 0 {
			// The origin closes an idle connection after 300 ms; the page's
			// favicon request comes first.
			time.Sleep(1500 * time.Millisecond)
		}
		url := "https://" + quicHost + path
		if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
			return pages, fmt.Errorf("loading %s: %w", url, err)
		}
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#p")))
		if err != nil {
			return pages, fmt.Errorf("reading %s: %w", url, err)
		}
		pages = append(pages, text)
	}
	return pages, nil
}
