package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestMirrorOverlap: with --mirror overlap (the default), a client of an origin
// that answered the same offer before is answered like that earlier
// connection while its own upstream handshake runs, and the record names
// the connection mirrored; with --mirror wait, or a TLS 1.2 origin, every
// client leg mirrors its own connection's upstream handshake. Both legs
// resume either way.
func TestMirrorOverlap(t *testing.T) {
	for _, tt := range []struct {
		name, mode string
		origin     uint16 // the origin's highest version
	}{
		{"overlap", MirrorOverlap, tls.VersionTLS13},
		{"wait", MirrorWait, tls.VersionTLS13},
		// A TLS 1.2 origin always waits: its answer may call for passing
		// a session-ID client through.
		{"overlap/tls1.2 origin", MirrorOverlap, tls.VersionTLS12},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mode := tt.mode
			o := startOrigin(t, func(c *tls.Config) { c.MaxVersion = tt.origin })
			e := startProxy(t, tempDir(t), func(c *Config) { c.Mirror = mode })
			cache := tls.NewLRUClientSessionCache(8)
			prev := ""
			for i := range 3 {
				resumed, body := e.goGet("origin.test", o.addr, cache, 0)
				if !strings.Contains(body, "hello from origin HTTP/1.1") {
					t.Fatalf("conn %d: body %q", i, body)
				}
				r := e.next()
				want := ""
				if mode == MirrorOverlap && tt.origin == tls.VersionTLS13 && i > 0 {
					want = prev
				}
				if r.Mirrored.From != want || len(r.Mirrored.Mismatch) > 0 {
					t.Errorf("conn %d: mirrored from %q (mismatch %v), want %q and none", i, r.Mirrored.From, r.Mirrored.Mismatch, want)
				}
				if resumed != (i > 0) || r.UpstreamLeg.Resumed != (i > 0) || r.ClientLeg.Resumed != resumed {
					t.Errorf("conn %d: client resumed %v (record %v), upstream %v", i, resumed, r.ClientLeg.Resumed, r.UpstreamLeg.Resumed)
				}
				if r.ClientLeg.ALPN != "http/1.1" || r.UpstreamLeg.ALPN != "http/1.1" || r.ClientLeg.Version != inspect.VersionName(tt.origin) {
					t.Errorf("conn %d: client leg %s %q, upstream %q", i, r.ClientLeg.Version, r.ClientLeg.ALPN, r.UpstreamLeg.ALPN)
				}
				prev = r.ID
			}
		})
	}
}

// switchingOrigin is an origin whose TLS answer the test changes between
// connections: the config each handshake gets (nil: refuse it).
type switchingOrigin struct {
	*origin
	cfg atomic.Pointer[tls.Config]
}

func startSwitchingOrigin(t *testing.T) *switchingOrigin {
	so := &switchingOrigin{}
	so.origin = startOrigin(t, func(c *tls.Config) {
		so.cfg.Store(c.Clone())
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if cfg := so.cfg.Load(); cfg != nil {
				return cfg, nil
			}
			return nil, errors.New("refused by the test")
		}
	})
	return so
}

// set changes what the origin answers from the next handshake on, as a
// restarted origin would: with new ticket keys, so that the upstream leg
// makes a full handshake (a resumed one shows neither a new certificate
// nor a CertificateRequest).
func (so *switchingOrigin) set(mod func(*tls.Config)) {
	c := so.cfg.Load().Clone()
	mod(c)
	var key [32]byte
	rand.Read(key[:])
	c.SetSessionTicketKeys([][32]byte{key})
	so.cfg.Store(c)
}

// TestMirrorOverlapMismatch: when an origin answers differently from the
// connection mirrored, the record says what differed, the request is still
// relayed (HTTP is spoken to each side in its own protocol), and the next
// connection mirrors the new answer; an origin that starts asking for a
// client certificate is mirrored as asking from then on; an origin that
// fails the handshake is named in a 502 to a client already answered.
func TestMirrorOverlapMismatch(t *testing.T) {
	so := startSwitchingOrigin(t)
	var console tlstest.Buffer
	e := startProxy(t, tempDir(t), func(c *Config) { c.Log = zerolog.New(&console) })
	get := func(step string) (*http.Response, string, *inspect.ConnRecord) {
		t.Helper()
		tr := e.proxyTransport(nil)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + so.addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b), e.next()
	}
	check := func(step string, r *inspect.ConnRecord, from string, mismatch ...string) {
		t.Helper()
		if r.Mirrored.From != from || !slices.Equal(r.Mirrored.Mismatch, mismatch) {
			t.Errorf("%s: mirrored from %q, mismatch %q; want %q, %q", step, r.Mirrored.From, r.Mirrored.Mismatch, from, mismatch)
		}
	}

	_, body, first := get("first")
	check("first", first, "")
	if first.ClientLeg.ALPN != "h2" || !strings.Contains(body, "HTTP/2") {
		t.Fatalf("first: client leg %q, origin saw %q: want h2", first.ClientLeg.ALPN, body)
	}

	so.set(func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	resp, body, r := get("alpn")
	check("alpn", r, first.ID, "alpn")
	if resp.ProtoMajor != 2 || !strings.Contains(body, "HTTP/1.1") || r.UpstreamLeg.ALPN != "http/1.1" {
		t.Errorf("alpn: client got %s, origin saw %q, upstream leg %q: want HTTP/2 to the client, HTTP/1.1 to the origin", resp.Proto, body, r.UpstreamLeg.ALPN)
	}
	if line := consoleLine(&console, r.ID); !strings.Contains(line, `"mirror_mismatch":["alpn"]`) || !strings.Contains(line, `"mirrored_from":"`+first.ID+`"`) {
		t.Errorf("alpn: the console line does not say what differed: %s", line)
	}
	resp, _, next := get("after alpn")
	check("after alpn", next, r.ID)
	if resp.ProtoMajor != 1 || next.ClientLeg.ALPN != "http/1.1" {
		t.Errorf("after alpn: client got %s (leg %q): the origin's new answer must be mirrored", resp.Proto, next.ClientLeg.ALPN)
	}

	leaf := leafSignedByOrigin(t, "origin.test", "localhost", "renamed.test")
	so.set(func(c *tls.Config) { c.Certificates = []tls.Certificate{leaf} })
	_, _, r = get("names")
	check("names", r, next.ID, "names")
	_, _, r2 := get("after names")
	check("after names", r2, r.ID)
	if !slices.Contains(r2.Mirrored.Names, "renamed.test") {
		t.Errorf("after names: leaf names %q, want the origin's new name", r2.Mirrored.Names)
	}

	so.set(func(c *tls.Config) { c.ClientAuth = tls.RequestClientCert })
	_, _, r = get("client cert")
	check("client cert", r, r2.ID, "client_cert")
	if r.ClientLeg.ClientCert != nil {
		t.Errorf("client cert: client leg %+v: the client was answered before the origin asked", r.ClientLeg.ClientCert)
	}
	_, _, r3 := get("after client cert")
	check("after client cert", r3, "")
	if cc := r3.ClientLeg.ClientCert; cc == nil || !cc.Requested {
		t.Errorf("after client cert: client leg %+v: an origin that asks is mirrored as asking, after its own handshake", cc)
	}

	so.cfg.Store(nil)
	resp, body, r = get("refused")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "could not reach") || r.UpstreamLeg.Error == "" || r.ClientLeg.Error != "" {
		t.Errorf("refused: client got %d %q; upstream error %q, client leg error %q", resp.StatusCode, body, r.UpstreamLeg.Error, r.ClientLeg.Error)
	}
}

// leafSignedByOrigin is a leaf for names, issued by the test origin's
// self-signed certificate (which originPool trusts).
func leafSignedByOrigin(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	return originCA.Issue(t, tlstest.CertOptions{Names: names, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}).TLS
}

// consoleLine is the line of a JSON console about connection id.
func consoleLine(console *tlstest.Buffer, id string) string {
	for _, line := range strings.Split(console.String(), "\n") {
		if strings.Contains(line, `"conn_id":"`+id+`"`) {
			return line
		}
	}
	return ""
}
