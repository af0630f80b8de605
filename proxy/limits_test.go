package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// These tests send what a hostile client would (issue 18): request headers
// of many megabytes, and header fields with control characters, in
// intercepted tunnels (HTTP/1.1 and h2) and to the proxy itself.

// roomyOrigin is an HTTPS (h2 and HTTP/1.1) and a plain HTTP origin on
// loopback that take request headers up to 128 MiB, so that whatever
// refuses a large header is tlsresume; it counts the requests it served.
type roomyOrigin struct {
	tlsAddr, plainAddr string
	served             atomic.Int32
}

func startRoomyOrigin(t *testing.T) *roomyOrigin {
	t.Helper()
	o := &roomyOrigin{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.served.Add(1)
		fmt.Fprintf(w, "hello from origin %s, user agent of %d bytes\n", r.Proto, len(r.UserAgent()))
	})
	for _, plain := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h, MaxHeaderBytes: 128 << 20, ReadHeaderTimeout: 10 * time.Second}
		if plain {
			o.plainAddr = ln.Addr().String()
		} else {
			o.tlsAddr = ln.Addr().String()
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{originCert}, NextProtos: []string{"h2", "http/1.1"}}
			ln = tls.NewListener(ln, srv.TLSConfig)
			http2.ConfigureServer(srv, &http2.Server{})
		}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}
	return o
}

// tunnel opens a CONNECT tunnel to target and completes a TLS handshake
// offering alpn.
func (e *testEnv) tunnel(target, alpn string) *tls.Conn {
	e.t.Helper()
	tc := tls.Client(e.connect(target), &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{alpn}})
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	if err := tc.Handshake(); err != nil {
		e.t.Fatalf("handshake through the proxy: %v", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != alpn {
		e.t.Fatalf("negotiated %q, want %q", got, alpn)
	}
	return tc
}

// exchange writes req on c while it reads the response: a server may
// answer before it has read the whole request.
func exchange(c net.Conn, req string) (*http.Response, string, error) {
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		io.WriteString(c, req)
	}()
	defer func() { c.Close(); <-wrote }()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b), nil
}

// heapInuse is the heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// userAgent is a User-Agent of n bytes.
func userAgent(n int) string { return "tester/1.0 " + strings.Repeat("x", n-len("tester/1.0 ")) }

// maxLine is the longest line of s.
func maxLine(s string) int {
	longest := 0
	for _, l := range strings.Split(s, "\n") {
		longest = max(longest, len(l))
	}
	return longest
}

// TestHeaderLimitInTunnel: a request inside an intercepted tunnel whose
// header section passes 64 KiB is answered 431 by tlsresume, over
// HTTP/1.1 and over h2 (an h2 field longer than the limit ends the
// connection), and never reaches the origin; a long User-Agent under the
// limit reaches it and is cut in the record, marked with its length; the
// heap, the record and the console line stay small.
func TestHeaderLimitInTunnel(t *testing.T) {
	o := startRoomyOrigin(t)
	var console tlstest.Buffer
	e := startProxy(t, tempDir(t), func(c *Config) { c.Log = zerolog.New(&console) })
	heap := heapInuse()

	t.Run("h1-64MiB-user-agent", func(t *testing.T) {
		resp, _, err := exchange(e.tunnel(o.tlsAddr, "http/1.1"), "GET / HTTP/1.1\r\nHost: origin.test\r\nUser-Agent: "+userAgent(64<<20)+"\r\n\r\n")
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("response %v, %v: want 431", resp, err)
		}
		if r := checkSmallRecord(t, e, ""); !strings.Contains(r.ClientLeg.StreamError, "refused the client's request: 431") {
			t.Errorf("client_leg.stream_error %q, want the 431 named", r.ClientLeg.StreamError)
		}
	})
	t.Run("h1-32KiB-user-agent", func(t *testing.T) {
		resp, body, err := exchange(e.tunnel(o.tlsAddr, "http/1.1"), "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\nUser-Agent: "+userAgent(32<<10)+"\r\n\r\n")
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(body, "32768 bytes") {
			t.Fatalf("response %v %q, %v: want the origin's 200", resp, body, err)
		}
		checkSmallRecord(t, e, "…[cut: 32768 bytes]")
	})
	for _, tc := range []struct {
		name   string
		fields []hpack.HeaderField
		want   int // status; 0: the connection ends instead
	}{
		{"h2-three-30KiB-fields", []hpack.HeaderField{{Name: "x-a", Value: userAgent(30 << 10)}, {Name: "x-b", Value: userAgent(30 << 10)}, {Name: "x-c", Value: userAgent(30 << 10)}}, http.StatusRequestHeaderFieldsTooLarge},
		{"h2-900KiB-user-agent", []hpack.HeaderField{{Name: "user-agent", Value: userAgent(900 << 10)}}, 0},
		{"h2-32KiB-user-agent", []hpack.HeaderField{{Name: "user-agent", Value: userAgent(32 << 10)}}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, err := h2Get(e.tunnel(o.tlsAddr, "h2"), tc.fields)
			if status != tc.want {
				t.Fatalf("status %d (%v), want %d", status, err, tc.want)
			}
			t.Logf("status %d, %v", status, err)
			mark := ""
			if tc.want == http.StatusOK {
				mark = "…[cut: 32768 bytes]"
			}
			checkSmallRecord(t, e, mark)
		})
	}
	if n := o.served.Load(); n != 2 {
		t.Errorf("the origin served %d requests, want 2 (the two under the limit)", n)
	}
	if grew := int64(heapInuse()) - int64(heap); grew > 24<<20 {
		t.Errorf("the heap grew by %d MiB", grew>>20)
	}
	if n := maxLine(console.String()); n > 16<<10 {
		t.Errorf("a console line of %d bytes", n)
	}
}

// checkSmallRecord takes the next record and checks that its JSON line is
// small and that its User-Agent ends with mark (is empty when mark is).
func checkSmallRecord(t *testing.T, e *testEnv, mark string) *inspect.ConnRecord {
	t.Helper()
	r := e.next()
	line, _ := json.Marshal(r)
	if len(line) > 16<<10 {
		t.Errorf("record %s is %d bytes of JSON", r.ID, len(line))
	}
	if len(r.UserAgent) > 512 || !strings.HasSuffix(r.UserAgent, mark) || (mark == "") != (r.UserAgent == "") {
		t.Errorf("record %s user_agent of %d bytes ending %q, want at most 512 ending %q", r.ID, len(r.UserAgent), r.UserAgent[max(0, len(r.UserAgent)-30):], mark)
	}
	return r
}

// h2Get sends a GET on a new HTTP/2 connection over tc with the extra
// header fields, its header block in as many CONTINUATION frames as it
// takes (whatever limit the server advertised), and returns the response's
// status, or 0 and what ended the connection instead.
func h2Get(tc *tls.Conn, fields []hpack.HeaderField) (int, error) {
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	pseudo := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"}, {Name: ":authority", Value: "origin.test"}, {Name: ":path", Value: "/"}}
	for _, f := range append(pseudo, fields...) {
		enc.WriteField(f)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		io.WriteString(tc, http2.ClientPreface)
		w := http2.NewFramer(tc, nil)
		w.WriteSettings()
		b := block.Bytes()
		n := min(len(b), 16<<10) // the default SETTINGS_MAX_FRAME_SIZE
		if w.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:n], EndStream: true, EndHeaders: n == len(b)}) != nil {
			return
		}
		for b = b[n:]; len(b) > 0; b = b[n:] {
			n = min(len(b), 16<<10)
			if w.WriteContinuation(1, n == len(b), b[:n]) != nil {
				return
			}
		}
	}()
	defer func() { tc.Close(); <-wrote }()
	r := http2.NewFramer(nil, tc)
	r.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return 0, err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return strconv.Atoi(f.PseudoValue("status"))
			}
		case *http2.GoAwayFrame:
			return 0, fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			return 0, fmt.Errorf("RST_STREAM %v", f.ErrCode)
		}
	}
}

// TestHeaderLimitOnProxyRequests: the CONNECT request itself and a plain
// forward-proxy request are held to the same 64 KiB as requests in
// tunnels.
func TestHeaderLimitOnProxyRequests(t *testing.T) {
	o := startRoomyOrigin(t)
	e := startProxy(t, tempDir(t), nil)
	big := "X-Big: " + strings.Repeat("y", 200<<10) + "\r\n"
	for _, tc := range []struct{ name, req string }{
		{"connect", "CONNECT " + o.tlsAddr + " HTTP/1.1\r\nHost: " + o.tlsAddr + "\r\n" + big + "\r\n"},
		{"forward", "GET http://" + o.plainAddr + "/ HTTP/1.1\r\nHost: " + o.plainAddr + "\r\n" + big + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			resp, _, err := exchange(c, tc.req)
			if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("response %v, %v: want 431", resp, err)
			}
		})
	}
	if n := o.served.Load(); n != 0 {
		t.Errorf("the origin served %d requests", n)
	}
}

// TestMalformedHeaderAnswered400: a request with a control character in a
// header field is answered 400 with a one-line body, inside a tunnel and
// on the forward-proxy path, not with a bare close; the tunnel's record
// says which line was refused.
func TestMalformedHeaderAnswered400(t *testing.T) {
	o := startRoomyOrigin(t)
	e := startProxy(t, tempDir(t), nil)
	const bad = "User-Agent: bad\x01agent\r\n"
	for _, tc := range []struct {
		name string
		conn func() net.Conn
		req  string
	}{
		{"tunnel", func() net.Conn { return e.tunnel(o.tlsAddr, "http/1.1") }, "GET / HTTP/1.1\r\nHost: origin.test\r\n" + bad + "\r\n"},
		{"forward", func() net.Conn { return dialFrom(t, "127.0.0.1", e.addr) }, "GET http://" + o.plainAddr + "/ HTTP/1.1\r\nHost: " + o.plainAddr + "\r\n" + bad + "\r\n"},
		{"connect", func() net.Conn { return dialFrom(t, "127.0.0.1", e.addr) }, "CONNECT " + o.tlsAddr + " HTTP/1.1\r\nHost: " + o.tlsAddr + "\r\n" + bad + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.conn()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			resp, body, err := exchange(c, tc.req)
			if err != nil || resp.StatusCode != http.StatusBadRequest || body == "" || strings.Contains(strings.TrimSuffix(body, "\n"), "\n") {
				t.Fatalf("response %v %q, %v: want 400 with a one-line body", resp, body, err)
			}
			t.Logf("%s: %s %q", tc.name, resp.Status, body)
			if tc.name == "tunnel" {
				if r := e.next(); !strings.Contains(r.ClientLeg.StreamError, `400 Bad Request: malformed MIME header line: "User-Agent: bad\x01agent"`) {
					t.Errorf("client_leg.stream_error %q, want the refused line named", r.ClientLeg.StreamError)
				}
			}
		})
	}
	if n := o.served.Load(); n != 0 {
		t.Errorf("the origin served %d requests", n)
	}
}
