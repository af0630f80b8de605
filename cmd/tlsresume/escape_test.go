package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// sgr matches the colour sequences the console writer itself adds.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// hostileLog is a --log whose first connection's SNI, ALPN, User-Agent
// and error carry terminal escapes, and whose second is plain.
func hostileLog(t *testing.T, path string) {
	t.Helper()
	t0 := time.Date(2025, 8, 20, 10, 0, 0, 0, time.UTC)
	hello := func(alpn ...string) *inspect.ClientHelloRecord {
		return &inspect.ClientHelloRecord{LegacyVersion: 0x0303, SupportedVersions: []int{0x0304, 0x0303}, ALPN: alpn,
			PSKKeyExchangeModes: []int{1}, Attempt: inspect.AttemptNone, JA4: "t13d3012h2_1d37bd780c83_882d495ac381"}
	}
	failed := inspect.Verdict{Code: inspect.CodeUpstreamFailed, Client: inspect.CodeClientFirstContact, Upstream: inspect.CodeUpstreamFailed}
	first := inspect.Verdict{Code: inspect.CodeFirstContact, Client: inspect.CodeClientFirstContact, Upstream: inspect.CodeUpstreamFirstContact}
	writeLog(t, path, []*inspect.ConnRecord{
		{Record: inspect.Record{V: inspect.SchemaVersion, Time: t0, Source: inspect.SourceConnect, ClientAddr: "127.0.0.1:5000",
			SNI: tlstest.HostileSNI, ClientHello: hello(tlstest.HostileALPN, "http/1.1"), Error: "x509: certificate is valid for a.test, not " + tlstest.HostileSNI},
			ID: "c1", Target: tlstest.HostileSNI + ":443", UserAgent: tlstest.HostileUserAgent, ClientLeg: &inspect.ClientLeg{}, Verdict: failed},
		{Record: inspect.Record{V: inspect.SchemaVersion, Time: t0.Add(time.Second), Source: inspect.SourceConnect, ClientAddr: "127.0.0.1:5001",
			SNI: "a.test", ClientHello: hello("h2")},
			ID: "c2", Target: "a.test:443", UserAgent: "curl/8.5.0", ClientLeg: &inspect.ClientLeg{}, Verdict: first},
	})
}

// hostilePcap writes a capture of one real crypto/tls ClientHello whose
// SNI and ALPN carry terminal escapes.
func hostilePcap(t *testing.T, path string) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: tlstest.HostileSNI, NextProtos: []string{tlstest.HostileALPN}}).Handshake()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	_, hello, err := inspect.ReadClientHello(b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(127, 0, 0, 1), DstIP: net.IPv4(127, 0, 0, 2)}
	for i, seg := range []struct {
		tcp     layers.TCP
		payload []byte
	}{
		{layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 100, SYN: true, Window: 65535}, nil},
		{layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 101, ACK: true, PSH: true, Window: 65535}, hello},
	} {
		tcp := seg.tcp
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, &tcp, gopacket.Payload(seg.payload)); err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2025, 8, 20, 10, 0, i, 0, time.UTC)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCLIHostile: report, diff and inspect show a hostile SNI, ALPN,
// User-Agent and error escaped on stdout, and so do the CLI's error
// messages on stderr that embed a file's name or contents or a selector.
func TestCLIHostile(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "conns.jsonl")
	hostileLog(t, logFile)
	capture := filepath.Join(dir, "hostile.pcap")
	hostilePcap(t, capture)
	config := filepath.Join(dir, "config.yaml")
	os.WriteFile(config, fmt.Appendf(nil, "upstream-ca: %q\n", filepath.Join(dir, "ca"+tlstest.HostileSNI+"\u009b.pem")), 0o600)
	missing := filepath.Join(dir, "evil"+tlstest.HostileSNI+".jsonl")

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each shown
		stderr []string
	}{
		{"report", []string{"report", logFile}, 0, []string{`\x1b]0;PWNED`, `evil\u009b2J\x7f`}, nil},
		{"diff", []string{"diff", logFile, "--a", "conn=c1", "--b", "conn=c2"}, 0,
			[]string{tlstest.HostileSNIShown, tlstest.HostileALPNShown, tlstest.HostileUserAgentShown}, nil},
		{"diff by a hostile host", []string{"diff", logFile, "--a", "host=" + tlstest.HostileSNI, "--b", "conn=c2"}, 0,
			[]string{"host=" + tlstest.HostileSNIShown}, nil},
		{"inspect", []string{"inspect", capture}, 0, []string{`\x1b]0;PWNED`}, nil},
		{"diff selector that matches nothing", []string{"diff", logFile, "--a", "conn=" + tlstest.HostileSNI, "--b", "conn=c2"}, 1,
			nil, []string{"no record matches --a conn=" + tlstest.HostileSNIShown}},
		{"a file's name", []string{"report", missing}, 2, nil, []string{"evil" + tlstest.HostileSNIShown + ".jsonl"}},
		{"a file's name, inspect", []string{"inspect", missing}, 2, nil, []string{"evil" + tlstest.HostileSNIShown + ".jsonl"}},
		{"a config file's value", []string{"proxy", "--config", config, "--listen", "127.0.0.1:0", "--web", "off"}, 2, nil,
			[]string{"ca" + tlstest.HostileSNIShown + `\u009b.pem`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("TLSRESUME_HOME", t.TempDir())
			var out, errb bytes.Buffer
			if code := run(context.Background(), tt.args, &out, &errb); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			tlstest.CheckTerminal(t, "stdout", out.String(), false)
			tlstest.CheckTerminal(t, "stderr", sgr.ReplaceAllString(errb.String(), ""), false) // the console's own colours may come first
			for _, want := range tt.stdout {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout does not show %q:\n%s", want, out.String())
				}
			}
			for _, want := range tt.stderr {
				if !strings.Contains(errb.String(), want) {
					t.Errorf("stderr does not show %q:\n%s", want, errb.String())
				}
			}
		})
	}
}

// TestCLIJSONTrueValues: the JSON outputs carry hostile values as they
// are (JSON's own escapes, C1 as UTF-8), for programs to read.
func TestCLIJSONTrueValues(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "conns.jsonl")
	hostileLog(t, logFile)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"diff", "--format", "json", logFile, "--a", "conn=c1", "--b", "conn=c2"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var d inspect.Diff
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.A.Hosts) != 1 || d.A.Hosts[0] != tlstest.HostileSNI || len(d.A.Programs) != 1 || !strings.HasPrefix(d.A.Programs[0], "evil\u009b") {
		t.Errorf("diff JSON: hosts %q, programs %q; want the true values", d.A.Hosts, d.A.Programs)
	}
}

// TestCLIConsoleHostileSNI: the proxy as the CLI runs it, its console on
// stderr as a person sees it, and a crypto/tls client whose SNI would
// retitle and clear the terminal: the connection's line (its upstream x509
// error embeds the SNI) shows it escaped.
func TestCLIConsoleHostileSNI(t *testing.T) {
	t.Setenv("TLSRESUME_HOME", t.TempDir())
	port, _ := startTLSServer(t, "a.test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr tlstest.Buffer
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off"}, io.Discard, &stderr)
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
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%[1]d\r\n\r\n", port)
	if _, err := io.ReadFull(c, make([]byte, len("HTTP/1.1 200 "))); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: tlstest.HostileSNI, InsecureSkipVerify: true, NextProtos: []string{tlstest.HostileALPN}})
	tc.Handshake() // tlsresume will not mint a certificate for that name
	tc.Close()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "  client "); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no connection line: %s", stderr.String())
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("exit %d", code)
	}
	text := sgr.ReplaceAllString(stderr.String(), "")
	tlstest.CheckTerminal(t, "console", text, false)
	if !strings.Contains(text, "not "+tlstest.HostileSNIShown) {
		t.Errorf("the console does not show the SNI escaped in the upstream error:\n%s", text)
	}
}
