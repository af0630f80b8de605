package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestProxyRefusals: settings that would make an open proxy, or that are
// malformed, exit 2 with one line saying what to do, before listening.
func TestProxyRefusals(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badYAML, []byte("listne: 127.0.0.1:1\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--allow"},
		{[]string{"--listen", "127.0.0.1:0", "--transparent", "0.0.0.0:0"}, "--allow"},
		{[]string{"--client-tickets", "maybe"}, "want mirror, true or false"},
		{[]string{"--client-max-tls", "1.4"}, "want 1.0, 1.1, 1.2 or 1.3"},
		{[]string{"--allow", "not-a-cidr"}, "--allow"},
		{[]string{"--config", badYAML}, `unknown key "listne"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--web", "8081"}, "want host:port or off"},
		{[]string{"--web-history", "0"}, "--web-history 0"},
		{[]string{"--client-resumption", "sometimes"}, "want allow, refuse or expire-after=DURATION"},
		{[]string{"--session-id-clients", "maybe"}, "want passthrough or intercept"},
		{[]string{"--client-auth", "sometimes"}, "want mirror, request, require or none"},
		{[]string{"--upstream-client-cert", "alice.pem"}, "want PATTERN=CERT.pem,KEY.pem"},
		{[]string{"--upstream-client-cert", "*=missing.pem,missing-key.pem"}, "missing.pem"},
		{[]string{"--max-conns", "-1"}, "--max-conns -1: want a positive number"},
		{[]string{"--upstream-reuse", "share"}, "want pair or pool"},
		{[]string{"--mirror", "late"}, "want overlap or wait"},
		{[]string{"--max-conns", "0"}, "--max-conns 0"},
		{[]string{"--upstream-cache-size", "-5"}, "--upstream-cache-size -5"},
		{[]string{"--idle-timeout", "0s"}, "--idle-timeout 0s: want a positive duration"},
		{[]string{"--upstream-ticket-ttl", "-1m"}, "--upstream-ticket-ttl"},
		{[]string{"--ticket-rotation", "0s"}, "--ticket-rotation"},
		{[]string{"--grace", "-1s"}, "--grace"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("TLSRESUME_HOME", t.TempDir())
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"proxy"}, tt.args...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tt.want)
			}
		})
	}
}

// TestTicketRotationFlag: --ticket-rotation under a minute is refused at
// once, naming the minimum, before anything listens (it used to start a
// rotation loop that took a core and wrote hundreds of keys a second).
func TestTicketRotationFlag(t *testing.T) {
	t.Setenv("TLSRESUME_HOME", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off", "--ticket-rotation", "1ms"}, &out, &errb)
	want := "--ticket-rotation 1ms: want at least 1m0s"
	if code != 2 || !strings.Contains(errb.String(), want) || ctx.Err() != nil {
		head, _, _ := strings.Cut(errb.String(), "\n")
		t.Errorf("exit %d (context: %v), stderr %d bytes starting %q; want exit 2 at once and %q", code, ctx.Err(), errb.Len(), head, want)
	}
}

// TestSampleConfig: configs/tlsresume.yaml is accepted as it is shipped.
func TestSampleConfig(t *testing.T) {
	fs := flagSetForTest()
	if err := applyConfigFile(fs, filepath.Join("..", "..", "configs", "tlsresume.yaml")); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("upstream-ticket-ttl").Value.String(); got != "10m0s" {
		t.Errorf("upstream-ticket-ttl = %s", got)
	}
}

func flagSetForTest() *flag.FlagSet {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var p proxyFlags
	p.register(fs)
	return fs
}

// TestConfigLists: YAML lists become the flags' comma-separated values, and
// a flag on the command line wins over the file.
func TestConfigLists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("intercept: [\"*.example.com\", api.test]\nmax-conns: 7\n"), 0o600)
	fs := flagSetForTest()
	fs.Parse([]string{"--max-conns", "9"})
	if err := applyConfigFile(fs, path); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("intercept").Value.String(); got != "*.example.com,api.test" {
		t.Errorf("intercept = %q", got)
	}
	if got := fs.Lookup("max-conns").Value.String(); got != "9" {
		t.Errorf("max-conns = %s, want the command line's 9", got)
	}
}

// TestWebAddress: the live view's default address may be taken (a second
// proxy): the proxy goes on without the view and says so; an address the
// user gave must bind. A non-loopback view gets a random token.
func TestWebAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var log bytes.Buffer
	for _, explicit := range []bool{false, true} {
		fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
		var w webFlags
		w.register(fs)
		w.addr = taken.Addr().String()
		if explicit {
			fs.Set("web", taken.Addr().String())
		}
		ln, err := w.listen(zerolog.New(&log), true)
		if ln != nil || (err != nil) != explicit {
			t.Errorf("explicit=%v: listener %v, error %v", explicit, ln, err)
		}
	}
	if !strings.Contains(log.String(), "live view not started") {
		t.Errorf("the default address being taken was not said: %q", log.String())
	}
	var w webFlags
	w.register(flag.NewFlagSet("proxy", flag.ContinueOnError))
	for _, tt := range []struct {
		addr  string
		token bool
	}{{"127.0.0.1:18081", false}, {"[::1]:18081", false}, {"192.0.2.7:18081", true}, {"0.0.0.0:18081", true}} {
		cfg, err := w.config(fakeListener{addr: tt.addr})
		if err != nil || (cfg.Token != "") != tt.token || (tt.token && len(cfg.Token) != 32) {
			t.Errorf("%s: token %q (%v), want a token: %v", tt.addr, cfg.Token, err, tt.token)
		}
		if u := viewURL(fakeListener{addr: tt.addr}, cfg.Token); tt.token != strings.Contains(u, "?token="+cfg.Token) || strings.Contains(u, "0.0.0.0") {
			t.Errorf("%s: URL %s", tt.addr, u)
		}
	}
}

// fakeListener only has an address: the token decision needs no socket.
type fakeListener struct{ addr string }

func (f fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (f fakeListener) Close() error              { return nil }
func (f fakeListener) Addr() net.Addr {
	ap := netip.MustParseAddrPort(f.addr)
	return net.TCPAddrFromAddrPort(ap)
}

// TestLogWriteErrors: a --log that cannot be written (/dev/full) is an
// error on the console as soon as a record fails, and the run exits 1.
func TestLogWriteErrors(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	t.Setenv("TLSRESUME_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off", "--log", "/dev/full"}, &stdout, &stderr)
	}()
	addrRE := regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)`)
	var addr string
	for deadline := time.Now().Add(5 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("not listening: %s", stderr.String())
		}
	}
	// One connection that is recorded: a CONNECT to a closed port.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
	c.Write([]byte("\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00")) // a short, bad hello: recorded at once
	io.Copy(io.Discard, c)
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "records could not be written"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no error on the console: %s", stderr.String())
		}
	}
	cancel()
	if code := <-exited; code != 1 {
		t.Errorf("exit %d, want 1; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--log /dev/full: 1 records could not be written") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestFailedStartCreatesNothing: a start that fails because its port is
// taken creates no CA, ticket keys or log, and rewrites none it finds
// (--rotate-ticket-keys included).
func TestFailedStartCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	logFile := filepath.Join(dir, "conns.jsonl")
	args := []string{"proxy", "--listen", taken.Addr().String(), "--web", "off", "--log", logFile, "--rotate-ticket-keys"}

	t.Setenv("TLSRESUME_HOME", home)
	var stderr bytes.Buffer
	if code := run(context.Background(), args, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	for _, p := range []string{home, logFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed start (%v)", p, err)
		}
	}
	// A DNS port that is taken: nothing is written either.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	dnsArgs := []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off", "--log", logFile,
		"--dns", udp.LocalAddr().String(), "--dns-answer", "127.0.0.1", "--dns-upstream", "127.0.0.1:1"}
	stderr.Reset()
	if code := run(context.Background(), dnsArgs, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "--dns") {
		t.Fatalf("DNS port taken: exit %d, stderr %q", code, stderr.String())
	}
	for _, p := range []string{home, logFile} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed start on the DNS port (%v)", p, err)
		}
	}
	// A home that exists is left as it was.
	if code := run(context.Background(), []string{"ca", "init"}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("ca init: exit %d", code)
	}
	before := snapshot(t, home)
	if code := run(context.Background(), args, io.Discard, io.Discard); code != 1 {
		t.Fatalf("second failed start: exit %d", code)
	}
	if after := snapshot(t, home); !maps.Equal(before, after) {
		t.Errorf("a failed start changed %s: %v became %v", home, before, after)
	}
}

// snapshot maps each file in dir to its contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = string(b)
	}
	return m
}

// TestRefusalMetrics: the CLI wires the proxy's refusals and the record
// log's losses into /metrics: a peer outside --allow is counted as
// not_allowed there, on the proxy's listener and on --dns alike (which
// gives it no answer over UDP and a closed connection over TCP).
func TestRefusalMetrics(t *testing.T) {
	t.Setenv("TLSRESUME_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--allow", "127.0.0.2/32", "--web", "127.0.0.1:0",
			"--dns", "127.0.0.1:0", "--dns-answer", "192.0.2.1", "--dns-upstream", "127.0.0.1:9",
			"--log", filepath.Join(t.TempDir(), "conns.jsonl")}, io.Discard, &stderr)
	}()
	addrRE := regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)\S* \S*mode=\S*connect`)
	dnsRE := regexp.MustCompile(`listen=\S*?(127\.0\.0\.1:\d+)\S* \S*mode=\S*dns`)
	viewRE := regexp.MustCompile(`Live view: (http://127\.0\.0\.1:\d+/)`)
	var addr, dnsAddr, view string
	for deadline := time.Now().Add(5 * time.Second); addr == "" || dnsAddr == "" || view == ""; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		if m := dnsRE.FindStringSubmatch(stderr.String()); m != nil {
			dnsAddr = m[1]
		}
		if m := viewRE.FindStringSubmatch(stderr.String()); m != nil {
			view = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening: %s", stderr.String())
		}
	}
	c, err := net.Dial("tcp", addr) // from 127.0.0.1, outside --allow
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, c) // closed at accept
	c.Close()
	// A DNS query over UDP (an A query for a.test), then a TCP connection.
	query := []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01")
	u, err := net.Dial("udp", dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	u.Write(query)
	u.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := u.Read(make([]byte, 512)); err == nil {
		t.Errorf("--dns answered a client outside --allow over UDP (%d bytes)", n)
	}
	u.Close()
	d, err := net.Dial("tcp", dnsAddr)
	if err != nil {
		t.Fatal(err)
	}
	d.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := d.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("--dns kept a TCP connection from outside --allow open")
	}
	d.Close()
	want := []string{`tlsresume_connections_refused_total{reason="not_allowed"} 3`, `tlsresume_records_unwritten_total 0`}
	var b []byte
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(view + "metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), want[0]) || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("/metrics lacks %q:\n%s", w, b)
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
