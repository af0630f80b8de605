package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTunnelQuietClients: net/http, which reads the requests in tunnels,
// takes a silent client or one that said it is done sending for a client
// gone; tlsresume answers them all the same, as the origin would. A client
// that shuts its side after an HTTP/1.0 request gets its answer; a silent
// client gets a response that outlasts the idle timeout, each chunk as it
// comes; but a client that stops in the middle of its request body is
// closed after the idle timeout.
func TestTunnelQuietClients(t *testing.T) {
	const idle = 400 * time.Millisecond
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{originCert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			io.WriteString(w, "hello from origin")
			return
		}
		for i := range 4 { // 1.2 s in all, three times the idle timeout
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e := startProxy(t, tempDir(t), func(c *Config) { c.IdleTimeout = idle })

	t.Run("http1.0-then-close-notify", func(t *testing.T) {
		tc := e.tunnel(ln.Addr().String(), "http/1.1")
		defer tc.Close()
		io.WriteString(tc, "GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n")
		tc.CloseWrite()
		b, err := io.ReadAll(tc)
		if resp, _ := http.ReadResponse(bufio.NewReader(strings.NewReader(string(b))), nil); resp == nil || resp.StatusCode != 200 || !strings.HasSuffix(string(b), "hello from origin") {
			t.Errorf("got %q, %v: want the origin's answer", b, err)
		}
		e.next()
	})
	t.Run("silent-past-idle", func(t *testing.T) {
		tc := e.tunnel(ln.Addr().String(), "http/1.1")
		defer tc.Close()
		io.WriteString(tc, "GET /slow HTTP/1.1\r\nHost: origin.test\r\n\r\n")
		br := bufio.NewReader(tc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		first, err := bufio.NewReader(resp.Body).ReadString('\n')
		if first != "chunk 0\n" || time.Since(start) > 800*time.Millisecond {
			t.Errorf("first chunk %q (%v) after %v: want it before the origin sends the last, at 900ms", first, err, time.Since(start))
		}
		rest, err := io.ReadAll(resp.Body)
		if err != nil || !strings.HasSuffix(string(rest), "chunk 3\n") {
			t.Errorf("rest of the response %q, %v: want every chunk", rest, err)
		}
		tc.Close()
		e.next()
	})
	t.Run("stalled-body", func(t *testing.T) {
		tc := e.tunnel(ln.Addr().String(), "http/1.1")
		defer tc.Close()
		io.WriteString(tc, "POST / HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 100\r\n\r\n0123456789")
		start := time.Now()
		io.Copy(io.Discard, tc) // returns when tlsresume closes
		if waited := time.Since(start); waited > idle+3*time.Second {
			t.Errorf("closed after %v, want about the idle timeout %v", waited, idle)
		}
		e.next()
	})
}
