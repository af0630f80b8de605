package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// sgr matches the colour sequences the console writer itself adds.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// TestConsoleWriterHostile: a console line about a connection whose SNI,
// User-Agent and errors carry terminal escapes shows them escaped, in the
// message, in string fields, in list fields, in errors and in field names,
// with colours and without.
func TestConsoleWriterHostile(t *testing.T) {
	for _, noColor := range []bool{true, false} {
		t.Run(fmt.Sprintf("no-color=%v", noColor), func(t *testing.T) {
			var out strings.Builder
			log := zerolog.New(ConsoleWriter(&out, noColor)).With().Timestamp().Logger()
			s := &Server{cfg: Config{Log: log}}
			s.logRecord(&inspect.ConnRecord{
				Record: inspect.Record{ClientAddr: "127.0.0.1:1", SNI: tlstest.HostileSNI,
					Error: "upstream: x509: certificate is valid for a.test, not " + tlstest.HostileSNI},
				ID: "c1", Target: tlstest.HostileSNI + ":443", UserAgent: tlstest.HostileUserAgent,
				Mirrored: &inspect.Mirrored{From: "c0", Mismatch: []string{"alpn\u009b", tlstest.HostileALPN}},
				Verdict:  inspect.Verdict{Code: inspect.CodeUpstreamFailed, Text: "upstream: failed: x509: not " + tlstest.HostileSNI},
			})
			log.Warn().Err(errors.New("tls: "+tlstest.HostileSNI)).Str(tlstest.HostileALPN, "key").Msg("handshake")
			httpErrorLog(log).Printf("http: TLS handshake error from %s\n", tlstest.HostileUserAgent)

			text := out.String()
			if !noColor {
				if !strings.Contains(text, "\x1b[31m") {
					t.Fatalf("no colours: %q", text)
				}
				text = sgr.ReplaceAllString(text, "")
			}
			tlstest.CheckTerminal(t, "console", text, false)
			for _, want := range []string{"→ " + tlstest.HostileSNIShown + ":443", "not " + tlstest.HostileSNIShown,
				"c1 evil\\u009b2J\\x7f/1.0 127.0.0.1 →", tlstest.HostileALPNShown + "=key", `alpn\u009b`, "error from " + tlstest.HostileUserAgentShown} {
				if !strings.Contains(text, want) {
					t.Errorf("the console does not show %q:\n%s", want, text)
				}
			}
		})
	}
}

// TestConsoleHostileClients: real crypto/tls clients through the proxy,
// one with an SNI that would retitle and clear the terminal and an ALPN
// with ESC, one whose requests carry C1 controls and DEL in User-Agent:
// the proxy's console (as the CLI writes it) shows them escaped, both in
// its connection lines (the x509 error embeds the SNI) and in what the
// HTTP relay says about the request it refused.
func TestConsoleHostileClients(t *testing.T) {
	o := startOrigin(t, nil)
	var console tlstest.Buffer
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.Log = zerolog.New(ConsoleWriter(&console, true)).With().Timestamp().Logger()
	})

	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: tlstest.HostileSNI, RootCAs: e.caPool(), NextProtos: []string{tlstest.HostileALPN, "http/1.1"}})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Error("a handshake for a name that is no host name succeeded")
	}
	tc.Close()
	if r := e.next(); r.SNI != tlstest.HostileSNI {
		t.Fatalf("record SNI %q, want %q", r.SNI, tlstest.HostileSNI)
	}

	const agentC1 = "evil\u009b2J/1.0" // no DEL: net/http reads this header
	for _, ua := range []string{agentC1, tlstest.HostileUserAgent} {
		raw := e.connect(o.addr)
		tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n", ua)
		io.Copy(io.Discard, tc)
		tc.Close()
		e.next()
	}
	e.stop()

	text := console.String()
	tlstest.CheckTerminal(t, "console", text, false)
	for _, want := range []string{"not " + tlstest.HostileSNIShown, `evil\u009b2J/1.0 127.0.0.1 →`, tlstest.HostileUserAgentShown} {
		if !strings.Contains(text, want) {
			t.Errorf("the console does not show %q:\n%s", want, text)
		}
	}
}

// TestHostileOriginNames: an origin whose certificate names carry terminal
// escapes fails verification; the x509 error that embeds them is shown
// escaped on the console and in the 502 page a client's terminal (curl)
// prints.
func TestHostileOriginNames(t *testing.T) {
	leaf := leafSignedByOrigin(t, tlstest.HostileSNI)
	o := startOrigin(t, func(c *tls.Config) { c.Certificates = []tls.Certificate{leaf} })
	var console tlstest.Buffer
	e := startProxy(t, tempDir(t), func(c *Config) {
		c.Log = zerolog.New(ConsoleWriter(&console, true)).With().Timestamp().Logger()
	})
	raw := e.connect(o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\n\r\n")
	page, _ := io.ReadAll(tc)
	tc.Close()
	e.next()
	e.stop()
	if !strings.Contains(string(page), "502") || !strings.Contains(string(page), "X-Tlsresume-Error: x509: certificate is valid for "+tlstest.HostileSNIShown) {
		t.Fatalf("no 502 page naming the error in its header: %q", page)
	}
	for what, text := range map[string]string{"502 page": string(page), "console": console.String()} {
		tlstest.CheckTerminal(t, what, strings.ReplaceAll(text, "\r\n", "\n"), false)
		if !strings.Contains(text, "valid for "+tlstest.HostileSNIShown) {
			t.Errorf("the %s does not show the origin's names escaped:\n%s", what, text)
		}
	}
}

// BenchmarkConsoleLine: one connection's console line, as zerolog's console
// writer alone wrote it and as ConsoleWriter writes it (the escaping costs
// little next to the writer's decoding of the event).
func BenchmarkConsoleLine(b *testing.B) {
	r := &inspect.ConnRecord{
		Record: inspect.Record{ClientAddr: "127.0.0.1:41234", SNI: "api.example.com", ClientHello: &inspect.ClientHelloRecord{JA4: "t13d1516h2_8daaf6152771_d8a2da3f94cd"}},
		ID:     "c12", Target: "api.example.com:443", UserAgent: "curl/8.5.0",
		ClientLeg: &inspect.ClientLeg{Resumed: true}, UpstreamLeg: &inspect.UpstreamLeg{Resumed: true},
		Verdict: inspect.Verdict{Code: inspect.CodeBothResumed, Text: "client: resumed with a TLS 1.3 PSK; upstream: resumed"},
	}
	for _, bm := range []struct {
		name string
		w    zerolog.ConsoleWriter
	}{
		{"zerolog", zerolog.ConsoleWriter{Out: io.Discard, NoColor: true, TimeFormat: "15:04:05"}},
		{"escaping", ConsoleWriter(io.Discard, true)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s := &Server{cfg: Config{Log: zerolog.New(bm.w).With().Timestamp().Logger()}}
			b.ReportAllocs()
			for b.Loop() {
				s.logRecord(r)
			}
		})
	}
}
