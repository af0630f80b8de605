package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestKillUnderLoad: tlsresume is killed with SIGKILL while three clients
// keep connecting through it. Every line of its --log parses, and every
// connection whose client had closed it more than 10 ms before the kill
// has its record. Then a second run appends to the same log: its records
// parse too, and no connection id of the first run comes again.
func TestKillUnderLoad(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tlsresume")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "origin")
	}))
	origin.Config.ErrorLog = log.New(io.Discard, "", 0) // the kill cuts handshakes short
	origin.StartTLS()
	defer origin.Close()
	upstreamCA := filepath.Join(dir, "origin.pem")
	os.WriteFile(upstreamCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o600)
	logPath := filepath.Join(dir, "conns.jsonl")
	home := filepath.Join(dir, "home")

	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, "proxy", "--listen", "127.0.0.1:0", "--web", "off", "--log", logPath,
			"--upstream-ca", upstreamCA, "--log-json")
		cmd.Env = append(os.Environ(), "TLSRESUME_HOME="+home)
		stderr := &tlstest.Buffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		addrRE := regexp.MustCompile(`"listen":"(127\.0\.0\.1:\d+)"`)
		var addr string
		for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
			if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
				addr = m[1]
			} else if time.Now().After(deadline) {
				t.Fatalf("run %d: not listening: %s", run, stderr.String())
			}
		}
		caPEM, err := os.ReadFile(filepath.Join(home, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)

		// Three clients, each at most 2,000 connections and until stop (about
		// 600 connections a second: load, with CPU left to write records).
		var mu sync.Mutex
		closedAt := map[string]time.Time{} // client address → when the client closed
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2000 {
					select {
					case <-stop:
						return
					default:
					}
					local, ok := fetchThrough(addr, origin.Listener.Addr().String(), roots)
					if !ok {
						return // killed
					}
					mu.Lock()
					closedAt[local] = time.Now()
					mu.Unlock()
				}
			}()
		}
		time.Sleep(1500 * time.Millisecond)
		killedAt := time.Now()
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
		cancel()

		recorded := map[string]bool{}
		ids := map[string]int{} // id → line
		f, err := os.Open(logPath)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		lines := 0
		for sc.Scan() {
			lines++
			var r struct {
				ID         string `json:"id"`
				ClientAddr string `json:"client_addr"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("run %d: line %d does not parse: %v: %q", run, lines, err, sc.Text())
			}
			recorded[r.ClientAddr] = true
			if first, dup := ids[r.ID]; dup {
				t.Errorf("run %d: id %s on line %d was already on line %d", run, r.ID, lines, first)
			}
			ids[r.ID] = lines
		}
		f.Close()
		var done, missing, late, lateRecorded int
		for local, at := range closedAt {
			if killedAt.Sub(at) <= 10*time.Millisecond {
				late++
				if recorded[local] {
					lateRecorded++
				}
				continue
			}
			done++
			if !recorded[local] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("run %d: %d of %d connections closed more than 10 ms before the kill have no record", run, missing, done)
		}
		if done < 50 {
			t.Errorf("run %d: only %d connections completed before the kill: too little load to tell", run, done)
		}
		t.Logf("run %d: %d connections completed before the kill (and %d within 10 ms of it, %d of those recorded too), %d lines in the log, all parse; %d missing",
			run, done, late, lateRecorded, lines, missing)
	}
}

// fetchThrough makes one HTTPS request through the proxy at proxyAddr to
// target, closing the connection after the response; it returns the
// client's local address, and false when the proxy is gone.
func fetchThrough(proxyAddr, target string, roots *x509.CertPool) (string, bool) {
	c, err := net.DialTimeout("tcp", proxyAddr, 2*time.Second)
	if err != nil {
		return "", false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		return "", false
	}
	tc := tls.Client(c, &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, NextProtos: []string{"http/1.1"}})
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target)
	if _, err := io.ReadAll(tc); err != nil {
		return "", false
	}
	tc.Close()
	return c.LocalAddr().String(), true
}
