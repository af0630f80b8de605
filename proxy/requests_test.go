package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestRecordRequests: a connection's record keeps its first 20 requests
// (method, authority, path without the query, the origin's status, the
// body's bytes, the time to the response headers) and counts all of them,
// over HTTP/2 (streams at once) and HTTP/1.1.
func TestRecordRequests(t *testing.T) {
	o := startOrigin(t, nil)
	o.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/n/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, strings.Repeat("x", n))
	})
	e := startProxy(t, tempDir(t), nil)
	_, port, _ := strings.Cut(o.addr, ":")
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			u, _ := url.Parse("http://" + e.addr)
			tr := &http.Transport{Proxy: http.ProxyURL(u), MaxConnsPerHost: 1, ForceAttemptHTTP2: proto == "h2",
				TLSClientConfig: &tls.Config{RootCAs: e.caPool(), NextProtos: []string{proto}}}
			if proto == "http/1.1" {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			get := func(path string) {
				resp, err := client.Get("https://localhost:" + port + path)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			get("/n/123?token=secret")
			get("/missing")
			var wg sync.WaitGroup
			for i := range 23 {
				wg.Add(1)
				go func() { defer wg.Done(); get(fmt.Sprintf("/n/%d", i)) }()
			}
			wg.Wait()
			tr.CloseIdleConnections()
			r := e.next()
			if len(r.Requests) != inspect.MaxRequests || r.RequestCount != 25 {
				t.Fatalf("%s: %d requests kept, %d counted; want %d and 25: %+v", r.ID, len(r.Requests), r.RequestCount, inspect.MaxRequests, r.Requests)
			}
			first := r.Requests[0]
			if first.Method != "GET" || first.Authority != "localhost:"+port || first.Path != "/n/123" || first.Status != 200 || first.Bytes != 123 || first.MS <= 0 {
				t.Errorf("first request %+v", first)
			}
			if miss := r.Requests[1]; miss.Path != "/missing" || miss.Status != 404 || miss.Bytes != int64(len("404 page not found\n")) {
				t.Errorf("second request %+v", miss)
			}
			for i, q := range r.Requests[2:] {
				n, _ := strconv.Atoi(strings.TrimPrefix(q.Path, "/n/"))
				if q.Status != 200 || q.Bytes != int64(n) {
					t.Errorf("request %d: %+v", i+2, q)
				}
			}
		})
	}
}

// TestRecordOriginCertificate: the upstream leg records the origin's
// certificate, on a full handshake, on a resumed one (crypto/tls keeps the
// certificate in the session) and on one whose verification failed.
func TestRecordOriginCertificate(t *testing.T) {
	o := startOrigin(t, nil)
	e := startProxy(t, tempDir(t), nil)
	cache := tls.NewLRUClientSessionCache(8)
	for i := range 2 {
		e.goGet("origin.test", o.addr, cache, 0)
		r := e.next()
		c := r.UpstreamLeg.Certificate
		if c == nil {
			t.Fatalf("%s (upstream resumed %v): no certificate", r.ID, r.UpstreamLeg.Resumed)
		}
		if r.UpstreamLeg.Resumed != (i == 1) {
			t.Errorf("%s: upstream resumed %v", r.ID, r.UpstreamLeg.Resumed)
		}
		leaf := originCA.TLS.Leaf
		if c.Subject != "CN=origin.test" || c.Issuer != "CN=origin.test" || !slices.Equal(c.Names, []string{"origin.test", "localhost", "127.0.0.1"}) ||
			!c.NotBefore.Equal(leaf.NotBefore) || !c.NotAfter.Equal(leaf.NotAfter) || c.ChainLen != 1 || !c.Verified || c.VerifyError != "" {
			t.Errorf("%s: certificate %+v", r.ID, c)
		}
	}

	lab := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamRoots = e.caPool() }) // does not trust the origin
	lab.failPage(o.addr, &tls.Config{ServerName: "origin.test"})
	r := lab.next()
	c := r.UpstreamLeg.Certificate
	if c == nil || c.Verified || !strings.Contains(c.VerifyError, "unknown authority") || c.Subject != "CN=origin.test" {
		t.Errorf("%s: certificate %+v", r.ID, c)
	}
}
