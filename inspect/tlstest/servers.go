package tlstest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Page is what GoServer serves at "/": a page whose sub-resources a browser
// fetches over new connections, because the server turns keep-alives off.
const Page = `<!doctype html><html><head><link rel="stylesheet" href="/a.css">` +
	`<script src="/b.js"></script></head><body><img src="/c.png"><img src="/d.png">` +
	`<p id="done">tlsresume</p></body></html>`

// GoServer is a crypto/tls HTTP/1.1 server on 127.0.0.1 that closes every
// connection after one response, so each request of a client is a new
// handshake. It resumes TLS 1.2 by ticket only (crypto/tls keeps no
// session-ID cache) and TLS 1.3 by PSK.
type GoServer struct {
	Port  int
	srv   *http.Server
	mu    sync.Mutex
	conns []*tls.Conn
	done  chan struct{}
}

// StartGoServer serves on a fresh loopback port, speaking only version.
// It stops when t ends.
func StartGoServer(t testing.TB, cert tls.Certificate, version uint16) *GoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	s := &GoServer{Port: ln.Addr().(*net.TCPAddr).Port, done: make(chan struct{})}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   version,
		MaxVersion:   version,
		NextProtos:   []string{"http/1.1"}, // no h2: a browser would multiplex on one connection
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(serve),
		ReadHeaderTimeout: 10 * time.Second, // also bounds the handshake
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:          log.New(io.Discard, "", 0), // browsers drop preconnects
	}
	s.srv.SetKeepAlivesEnabled(false)
	go func() {
		defer close(s.done)
		s.srv.Serve(&recordingListener{Listener: ln, cfg: cfg, s: s})
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-s.done
	})
	return s
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, Page)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "tlsresume\n")
}

// Resumed returns the server's own verdict, ConnectionState().DidResume,
// for each connection whose handshake completed, keyed by client port.
func (s *GoServer) Resumed() map[int]bool {
	s.mu.Lock()
	conns := append([]*tls.Conn(nil), s.conns...)
	s.mu.Unlock()
	out := make(map[int]bool, len(conns))
	for _, c := range conns {
		cs := c.ConnectionState()
		if cs.HandshakeComplete {
			out[c.RemoteAddr().(*net.TCPAddr).Port] = cs.DidResume
		}
	}
	return out
}

// listensOn reports whether process pid has a TCP socket listening on
// 127.0.0.1:port, from /proc/net/tcp and the process's descriptors (Linux).
func listensOn(pid, port int) bool {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	local := fmt.Sprintf("0100007F:%04X", port) // address as the kernel prints it on little-endian machines
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == local && f[3] == "0A" { // 0A: TCP_LISTEN
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return false
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && inodes[link] {
			return true
		}
	}
	return false
}

// recordingListener terminates TLS itself so that GoServer keeps every
// *tls.Conn, including those a client opened and never used.
type recordingListener struct {
	net.Listener
	cfg *tls.Config
	s   *GoServer
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := tls.Server(c, l.cfg)
	l.s.mu.Lock()
	l.s.conns = append(l.s.conns, tc)
	l.s.mu.Unlock()
	return tc, nil
}

// OpenSSLServer is an `openssl s_server` on 127.0.0.1. With -www its status
// page names each connection "New, TLSv1.x" or "Reused, TLSv1.x": the
// server's own verdict, which a client that prints nothing (curl) carries
// back.
type OpenSSLServer struct {
	Port int
	cmd  *exec.Cmd
	out  Buffer
}

// StartOpenSSLServer starts s_server with the certificate and args (-www,
// -tls1_2, -no_ticket, ...) and returns once it accepts. Its stdin is empty:
// without -www, pass -quiet, or it quits at that EOF. It stops when t ends or
// ctx is done.
func StartOpenSSLServer(ctx context.Context, t testing.TB, openssl string, cert Cert, args ...string) *OpenSSLServer {
	t.Helper()
	var lastErr error
	for try := 0; try < 3; try++ { // the free port may be taken before s_server binds it
		s := &OpenSSLServer{Port: FreePort(t)}
		all := append([]string{"s_server", "-accept", "127.0.0.1:" + strconv.Itoa(s.Port),
			"-cert", cert.CertFile, "-key", cert.KeyFile}, args...)
		s.cmd = Command(ctx, openssl, all...)
		s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting openssl s_server: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			s.cmd.Wait()
			close(exited)
		}()
		stop := func() {
			select {
			case <-exited:
			default:
				KillGroup(s.cmd)
				<-exited
			}
		}
		// Ready when this process listens on the port: with -quiet it prints
		// no ACCEPT, and a test connection could reach another process that
		// took the port first.
		err := waitFor(ctx, exited, func() bool { return listensOn(s.cmd.Process.Pid, s.Port) })
		if err == nil {
			t.Cleanup(stop)
			return s
		}
		stop()
		lastErr = fmt.Errorf("%w: %s", err, Tail(s.out.String(), 400))
		if !strings.Contains(s.out.String(), "in use") {
			break
		}
	}
	t.Fatalf("openssl s_server did not start: %v", lastErr)
	return nil
}
