package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// proxyRun is `tlsresume proxy` run as the CLI runs it, its console
// written to a file (not a terminal).
type proxyRun struct {
	addr    string // the CONNECT listener
	console string // the file stderr goes to
	ca      string // tlsresume's CA certificate
	stop    func() int
}

func startCLIProxy(t *testing.T, args ...string) *proxyRun {
	t.Helper()
	home := t.TempDir()
	t.Setenv("TLSRESUME_HOME", home)
	console := filepath.Join(t.TempDir(), "console.txt")
	f, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"proxy", "--listen", "127.0.0.1:0", "--web", "off"}, args...), &bytes.Buffer{}, f)
	}()
	p := &proxyRun{console: console, ca: filepath.Join(home, "ca.pem")}
	var once sync.Once
	code := 0
	p.stop = func() int { once.Do(func() { cancel(); code = <-exited }); return code }
	t.Cleanup(func() { p.stop() })
	addrRE := regexp.MustCompile(`(?:listen=|"listen":")(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)`)
	for deadline := time.Now().Add(5 * time.Second); p.addr == ""; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(p.text()); m != nil {
			p.addr = "127.0.0.1:" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("not listening: %s", p.text())
		}
	}
	return p
}

func (p *proxyRun) text() string {
	b, _ := os.ReadFile(p.console)
	return string(b)
}

// waitLines waits until n lines of the console contain marker.
func (p *proxyRun) waitLines(t *testing.T, marker string, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var lines []string
		for _, l := range strings.Split(p.text(), "\n") {
			if strings.Contains(l, marker) {
				lines = append(lines, l)
			}
		}
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lines with %q: %s", len(lines), n, marker, p.text())
		}
	}
}

// startLabOrigin runs openssl s_server on 127.0.0.1 with a certificate of
// its own CA, written to dir.
func startLabOrigin(t *testing.T, ctx context.Context, dir string, args ...string) (port int, caFile string) {
	t.Helper()
	openssl := tlstest.Need(t, "openssl")
	c := tlstest.NewCert(t, tlstest.CertOptions{Names: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, CA: true})
	c.Write(t, filepath.Join(dir, "origin.pem"), filepath.Join(dir, "origin-key.pem"))
	port = tlstest.FreePort(t)
	cmd := tlstest.Command(ctx, openssl, append([]string{"s_server", "-www", "-accept", "127.0.0.1:" + strconv.Itoa(port),
		"-cert", c.CertFile, "-key", c.KeyFile}, args...)...)
	var out tlstest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlstest.KillGroup(cmd); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "ACCEPT"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("s_server did not start: %s", out.String())
		}
	}
	return port, c.CertFile
}

// TestConsoleLines: the proxy's console, written to a file, as curl and
// openssl s_client make connections that resume, fail and are refused:
// one line per connection of at most about 200 characters, with the
// program, the host, what was offered, both legs and the verdict, and the
// fix where one is known; no colour codes, and no field repeating the
// line. With --log-json, the same lines carry the record's facts in
// fields.
func TestConsoleLines(t *testing.T) {
	curl := tlstest.Need(t, "curl")
	openssl := tlstest.Need(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	port, originCA := startLabOrigin(t, ctx, dir)
	labPort, _ := startLabOrigin(t, ctx, t.TempDir()) // a CA tlsresume is not told of
	for _, jsonLog := range []bool{false, true} {
		t.Run("json="+strconv.FormatBool(jsonLog), func(t *testing.T) {
			args := []string{"--upstream-ca", originCA}
			if jsonLog {
				args = append(args, "--log-json")
			}
			p := startCLIProxy(t, args...)
			url := func(port int) string { return "https://localhost:" + strconv.Itoa(port) + "/" }
			runs := [][]string{
				{curl, "-sS", "--max-time", "10", "--cacert", p.ca, "-x", "http://" + p.addr, "-H", "Connection: close", url(port), url(port)},
				{curl, "-sS", "--max-time", "10", "--cacert", p.ca, "-x", "http://" + p.addr, url(labPort)},
				{curl, "-sS", "--max-time", "10", "--cacert", originCA, "-x", "http://" + p.addr, url(port)}, // does not trust tlsresume
				{curl, "-sS", "--max-time", "10", "--cacert", p.ca, "-x", "https://" + p.addr, url(port)},
			}
			for _, args := range runs {
				tlstest.Command(ctx, args[0], args[1:]...).Run()
			}
			sess := filepath.Join(t.TempDir(), "sess")
			for _, flag := range []string{"-sess_out", "-sess_in"} {
				cmd := tlstest.Command(ctx, openssl, "s_client", "-connect", "127.0.0.1:"+strconv.Itoa(port), "-servername", "localhost",
					"-proxy", p.addr, "-CAfile", p.ca, "-ign_eof", flag, sess)
				cmd.Stdin = strings.NewReader("GET / HTTP/1.0\r\n\r\n")
				cmd.Run()
			}
			marker := "  client "
			if jsonLog {
				marker = `"verdict":`
			}
			lines := p.waitLines(t, marker, 7)
			text := p.text()
			if strings.Contains(text, "\x1b") {
				t.Errorf("colour codes in a console that is not a terminal:\n%q", text)
			}
			for _, want := range []string{"curl/", "offered nothing", "= both_resumed", "--upstream-ca FILE.pem, or --insecure-upstream",
				"fix: trust tlsresume's CA (tlsresume ca show)", "TLS to the proxy", "use -x http://"} {
				if !strings.Contains(text, want) {
					t.Errorf("the console lacks %q:\n%s", want, text)
				}
			}
			for _, l := range lines {
				t.Logf("%s", l)
				if jsonLog {
					var m map[string]any
					if err := json.Unmarshal([]byte(l), &m); err != nil || m["conn_id"] == nil || m["verdict"] == nil || m["client"] == nil || m["message"] == nil {
						t.Errorf("a JSON line without the record's fields (%v): %s", err, l)
					}
					continue
				}
				if n := len([]rune(l)); n > 213 || strings.Contains(l, "conn_id=") || strings.Contains(l, "verdict=") {
					t.Errorf("%d characters, or fields repeating the line: %s", n, l)
				}
			}
			if code := p.stop(); code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
}
