//go:build linux

package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestNetnsPassthrough: connections tlsresume must not terminate are
// relayed untouched (CONNECT from the client namespace), and the record
// still says, from the real server's hello, whether and how it resumed the
// client: by ticket and by session ID (TLS 1.2) and by PSK (TLS 1.3), as
// OpenSSL's s_client and s_server and Go's client say themselves. A client
// offering 0-RTT is passed through without any pattern, and its early data
// is accepted by the real server.
func TestNetnsPassthrough(t *testing.T) {
	e := newNSEnv(t)
	p := newNSProxy(t, e.files, func(c *Config) { c.Passthrough = []string{"origin.test"} })
	proxyAddr := netip.AddrPortFrom(nsGW4, uint16(p.listen("connect", netip.AddrPortFrom(nsGW4, 0).String())))
	for _, tt := range []struct {
		name  string
		port  uint16
		flags []string // s_server's and s_client's
		by    inspect.Attempt
	}{
		{"ticket_tls1.2", 4431, []string{"-tls1_2"}, "ticket"},
		{"session_id_tls1.2", 4432, []string{"-tls1_2", "-no_ticket"}, "session_id"},
		{"psk_tls1.3", 4433, []string{"-tls1_3"}, "psk"},
	} {
		dst := netip.AddrPortFrom(nsOrigin4, tt.port)
		e.n.startSServer(e.ctx, e.openssl, e.files, dst.String(), append([]string{"-www"}, tt.flags...)...)
		t.Run(tt.name+"/openssl", func(t *testing.T) {
			sess := filepath.Join(t.TempDir(), "sess")
			var issued string // the session ID the server gave connection 1
			for i, flag := range []string{"-sess_out", "-sess_in"} {
				sc := e.sClient(t, append([]string{"-proxy", proxyAddr.String(), "-connect", dst.String(), "-servername", "origin.test",
					"-CAfile", e.files.cert, "-verify_return_error", "-verify_hostname", "origin.test", flag, sess}, tt.flags...)...)
				r := p.take(1)[0]
				t.Logf("record %d: %s", i+1, nsBrief(r))
				checkPassedThrough(t, r, dst, i, sc.session == "Reused", originSaid(t, sc.page), tt.by)
				if i == 0 && r.ServerHello != nil {
					issued = r.ServerHello.SessionID
				}
				// The second hello's attempt is what s_client offered: a
				// session ID counts when the same server issued it earlier
				// in this proxy run (README, "How resumption is decided").
				if i == 1 && r.ClientHello != nil && r.ClientHello.Attempt != tt.by {
					t.Errorf("connection 2: client_hello.attempt %q, want %q (it offers session ID %s; connection 1's server_hello issued %s)",
						r.ClientHello.Attempt, tt.by, r.ClientHello.SessionID, issued)
				}
			}
		})
		t.Run(tt.name+"/go", func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				tc, err := nsHandshake(e.n.clientDial, proxyAddr, dst, &tls.Config{ServerName: "origin.test", RootCAs: e.files.pool, ClientSessionCache: cache})
				if err != nil {
					t.Fatalf("connection %d: %v (the client must see the origin's own certificate)", i+1, err)
				}
				io.WriteString(tc, "GET / HTTP/1.0\r\nHost: origin.test\r\n\r\n")
				page, _ := io.ReadAll(tc)
				tc.Close()
				r := p.take(1)[0]
				t.Logf("record %d: %s", i+1, nsBrief(r))
				by := tt.by
				if by == "session_id" {
					// Go's client resumes TLS 1.2 only by ticket
					// (crypto/tls/handshake_client.go): nothing to resume.
					by = ""
				}
				checkPassedThrough(t, r, dst, i, tc.ConnectionState().DidResume, originSaid(t, string(page)), by)
			}
		})
	}
	t.Run("early_data_automatic", func(t *testing.T) {
		plain := newNSProxy(t, e.files, nil) // no passthrough pattern
		plainAddr := netip.AddrPortFrom(nsGW4, uint16(plain.listen("connect", netip.AddrPortFrom(nsGW4, 0).String())))
		dst := netip.AddrPortFrom(nsOrigin4, 4434)
		// s_server refuses -early_data with -www: it prints what it reads.
		srv := e.n.startSServer(e.ctx, e.openssl, e.files, dst.String(), "-tls1_3", "-early_data", "-max_early_data", "16384")
		dir := t.TempDir()
		sess, early := filepath.Join(dir, "sess"), filepath.Join(dir, "early")
		if err := os.WriteFile(early, []byte("tlsresume early data\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The session must come from the real server (tlsresume's own
		// tickets allow no early data), so the first connection goes
		// straight to it, routed by this process as the gateway.
		ticketSaved := func(string) bool { fi, err := os.Stat(sess); return err == nil && fi.Size() > 0 }
		out, err := e.n.runUntil(e.ctx, e.n.client, "", ticketSaved, e.openssl, "s_client", "-connect", dst.String(),
			"-servername", "origin.test", "-CAfile", e.files.cert, "-verify_return_error", "-tls1_3", "-sess_out", sess)
		if err != nil || !strings.Contains(out, "Max Early Data: 16384") {
			t.Fatalf("first connection, straight to the origin: %v: %s", err, tlstest.Tail(out, 600))
		}
		out, err = e.n.runUntil(e.ctx, e.n.client, "", func(o string) bool { return strings.Contains(o, "Early data was") },
			e.openssl, "s_client", "-proxy", plainAddr.String(), "-connect", dst.String(), "-servername", "origin.test",
			"-CAfile", e.files.cert, "-verify_return_error", "-tls1_3", "-sess_in", sess, "-early_data", early)
		if err != nil {
			t.Fatal(err)
		}
		r := plain.take(1)[0]
		t.Logf("record: %s", nsBrief(r))
		if !strings.Contains(out, "Early data was accepted") || !strings.Contains(out, "Reused, TLSv1.3") {
			t.Errorf("s_client through tlsresume: %s", tlstest.Tail(out, 600))
		}
		// s_server writes the data raw and its label through a buffered BIO,
		// so the two can come out in either order.
		if so := srv.out.String(); !strings.Contains(so, "Early data received:") || !strings.Contains(so, "tlsresume early data") {
			t.Errorf("s_server did not read the early data: %s", tlstest.Tail(so, 400))
		}
		if r.Source != "connect" || !strings.Contains(r.Passthrough, "early_data") || r.ClientHello == nil || !r.ClientHello.EarlyData {
			t.Errorf("record: source %q passthrough %q early_data offered %v", r.Source, r.Passthrough, r.ClientHello != nil && r.ClientHello.EarlyData)
		}
		checkPassedThrough(t, r, dst, 1, true, true, "psk")
	})
}

// BenchmarkNetnsHandshakes compares tlsresume's transparent mode with its
// CONNECT mode on one path: a Go client in the client namespace makes full
// TLS handshakes with tlsresume (whose upstream leg resumes against the Go
// origin), either dialling the origin's IP (REDIRECTed to the transparent
// listener) or CONNECTing through the proxy listener on the same address.
// Each iteration makes one of each, alternating which goes first; the
// rates count the time from dial to finished handshake.
func BenchmarkNetnsHandshakes(b *testing.B) {
	n := newNetnsTopo(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	files := newNSOriginFiles(b, b.TempDir())
	dst := netip.AddrPortFrom(nsOriginB4, 443)
	n.startGoOrigin(ctx, files, []string{dst.String()}, nil)
	p := newNSProxy(b, files, nil)
	n.redirect(b, false, "tcp", 443, p.listen("transparent", netip.AddrPortFrom(nsGW4, 0).String()))
	proxyAddr := netip.AddrPortFrom(nsGW4, uint16(p.listen("connect", netip.AddrPortFrom(nsGW4, 0).String())))
	cfg := &tls.Config{ServerName: "origin.test", RootCAs: nsCAPool(b, p.caFile), NextProtos: []string{"http/1.1"}}
	// Timed: connect (and CONNECT) and the TLS handshake. Then, untimed,
	// one request, as a real client would send: tlsresume reads the
	// origin's TLS 1.3 tickets only when it reads the upstream connection.
	handshake := func(via netip.AddrPort) time.Duration {
		start := time.Now()
		tc, err := nsHandshake(n.clientDial, via, dst, cfg)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n")
		if page, err := io.ReadAll(tc); err != nil || !strings.Contains(string(page), "hello from go origin") {
			b.Fatalf("response %q: %v", page, err)
		}
		tc.Close()
		return d
	}
	transparent := netip.AddrPort{}
	handshake(transparent) // the leaf is minted and the upstream session cached once
	handshake(proxyAddr)
	var tTime, cTime time.Duration
	var count int
	b.ReportAllocs()
	for b.Loop() {
		if count%2 == 0 {
			tTime += handshake(transparent)
			cTime += handshake(proxyAddr)
		} else {
			cTime += handshake(proxyAddr)
			tTime += handshake(transparent)
		}
		count++
	}
	b.StopTimer()
	tRate, cRate := float64(count)/tTime.Seconds(), float64(count)/cTime.Seconds()
	b.ReportMetric(tRate, "transparent_hs/s")
	b.ReportMetric(cRate, "connect_hs/s")
	b.ReportMetric(tRate/cRate, "transparent/connect")
	// Every handshake was recorded, each with a resumed upstream leg.
	for _, r := range p.take(2*count + 2)[2:] {
		if r.ClientLeg == nil || r.ClientLeg.Error != "" || r.UpstreamLeg == nil || !r.UpstreamLeg.Resumed {
			b.Fatalf("record %s", nsBrief(r))
		}
	}
}
