package inspect_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// h3Origin is an HTTP/3 origin on a loopback UDP port, built with quic-go
// for these tests only. It closes a connection 300 ms after its last
// request, so that a browser's next page load needs a new connection (and
// resumes it with the ticket of the first).
type h3Origin struct {
	port    int
	mu      sync.Mutex
	resumed map[int]bool // by client port: the server's own verdict
	early   map[int]bool // by client port: 0-RTT was accepted
}

func startH3Origin(t *testing.T, cert tls.Certificate, allow0RTT bool, versions ...quic.Version) *h3Origin {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	o := &h3Origin{port: udp.LocalAddr().(*net.UDPAddr).Port, resumed: map[int]bool{}, early: map[int]bool{}}
	type connKey struct{}
	srv := &http3.Server{
		TLSConfig:   http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}),
		QUICConfig:  &quic.Config{Allow0RTT: allow0RTT, Versions: versions},
		IdleTimeout: 300 * time.Millisecond,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			cs := c.ConnectionState()
			port := c.RemoteAddr().(*net.UDPAddr).Port
			o.mu.Lock()
			o.resumed[port], o.early[port] = cs.TLS.DidResume, cs.Used0RTT
			o.mu.Unlock()
			return context.WithValue(ctx, connKey{}, c)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprintf(w, "<!doctype html><title>h3</title><p id=p>%s over %s</p>", r.URL.Path, r.Proto)
		}),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(udp) }()
	t.Cleanup(func() {
		srv.Close()
		udp.Close()
		<-done
	})
	return o
}

// reports is the server's verdict per client port.
func (o *h3Origin) reports() []tlstest.Report {
	o.mu.Lock()
	defer o.mu.Unlock()
	return reportsByPort(o.resumed)
}

// TestInspectQUICChromium: headless Chromium, with QUIC forced to a local
// HTTP/3 origin, loads two pages in one browser; the second connection
// resumes with the ticket of the first (and, where the origin allows it,
// sends 0-RTT). The capture is read by inspect and by tshark's QUIC
// dissector, which decrypts the Initial packets on its own; every hello
// field must agree, and the verdicts must be the origin's.
func TestInspectQUICChromium(t *testing.T) {
	for _, early := range []bool{false, true} {
		t.Run(map[bool]string{false: "psk", true: "psk+0rtt"}[early], func(t *testing.T) {
			chromium := tlstest.Need(t, "chromium")
			tshark := tlstest.Need(t, "tshark")
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			dir := t.TempDir()
			cert := tlstest.WriteCert(t, dir)
			o := startH3Origin(t, cert.TLS, early)
			capPath := filepath.Join(dir, "quic.pcap")
			t.Cleanup(func() { keepCapture(t, capPath) })
			capture := tlstest.StartUDPCapture(ctx, t, o.port, capPath)

			loads, err := loadTwice(t, chromium, cert.TLS, o.port, filepath.Join(dir, "profile"))
			if stopErr := capture.Stop(ctx); stopErr != nil {
				t.Fatal(stopErr)
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, l := range loads {
				if !strings.Contains(l, "HTTP/3") {
					t.Errorf("page %d was not served over HTTP/3: %q", i+1, l)
				}
			}
			recs := checkQUICCapture(ctx, t, tshark, capPath, o)
			var resumed, sent0RTT int
			for _, rs := range recs {
				for _, r := range rs {
					if r.ServerHello != nil && r.ServerHello.Resumed {
						resumed++
						if r.ClientHello.EarlyData != early || r.EarlyDataSent != early {
							t.Errorf("resumed connection (frame %d): early_data %v, early_data_sent %v; want %v",
								r.Frame, r.ClientHello.EarlyData, r.EarlyDataSent, early)
						}
					}
					if r.EarlyDataSent {
						sent0RTT++
					}
				}
			}
			if resumed == 0 {
				t.Errorf("no connection resumed: the second page load should have")
			}
			o.mu.Lock()
			for port, e := range o.early {
				if e && !early {
					t.Errorf("client port %d: the origin accepted 0-RTT it did not allow", port)
				}
			}
			o.mu.Unlock()
		})
	}
}

// loadTwice has one headless Chromium, with QUIC forced to the origin and
// its certificate's key trusted, load /first and then, after the origin
// closed that connection, /second; it returns the two pages' text.
func loadTwice(t *testing.T, chromium string, cert tls.Certificate, port int, profile string) ([]string, error) {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	const host = "quic.test" // mapped to 127.0.0.1; a name so that the hello carries SNI
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(profile),
		chromedp.Flag("origin-to-force-quic-on", fmt.Sprintf("%s:%d", host, port)),
		chromedp.Flag("host-resolver-rules", "MAP "+host+" 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The browser lives as long as the context of its first run, which must
	// carry no deadline; a watchdog bounds it instead.
	watchdog := time.AfterFunc(60*time.Second, cancel)
	defer watchdog.Stop()
	var pages []string
	for i, path := range []string{"/first", "/second"} {
		if i > 0 {
			// The origin closes an idle connection after 300 ms; the page's
			// favicon request comes first.
			time.Sleep(1500 * time.Millisecond)
		}
		url := fmt.Sprintf("https://%s:%d%s", host, port, path)
		if err := tlstest.Navigate(bctx, url, nil); err != nil { // again when other tests' namespaces change the network
			return pages, fmt.Errorf("loading %s: %w", url, err)
		}
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#p")))
		if err != nil {
			return pages, fmt.Errorf("reading %s: %w", url, err)
		}
		pages = append(pages, text)
	}
	return pages, nil
}

// checkQUICCapture reads a capture of QUIC connections to the origin with
// inspect and with tshark, compares every hello field by field, the QUIC
// version and connection ID, and the verdicts with the origin's.
func checkQUICCapture(ctx context.Context, t *testing.T, tshark, capPath string, o *h3Origin) records {
	t.Helper()
	msgs, err := tlstest.DissectQUIC(ctx, tshark, capPath, o.port)
	if err != nil {
		t.Fatal(err)
	}
	conns := tlstest.Connections(msgs, o.port)
	recs, nrecs := readRecords(t, capPath)
	t.Logf("%d QUIC connections, %d records, capture %s", len(conns), nrecs, capPath)
	checkAgainstTshark(t, conns, recs, nrecs)
	// A hello can complete in a retransmission sent to the server's
	// connection ID; the keys, and the record, use the one its first bytes
	// were sent to.
	starts, err := tlstest.QUICHelloStarts(ctx, tshark, capPath, o.port)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Type != tlstest.TypeClientHello || m.QUIC == nil {
			continue
		}
		dcid := ""
		for _, st := range starts {
			if st.Frame <= m.Frame {
				dcid = st.DCID
			}
		}
		var rec *inspect.Record
		for _, rs := range recs {
			for _, r := range rs {
				if r.Frame == m.Frame {
					rec = r
				}
			}
		}
		switch {
		case rec == nil:
			continue // reported by checkAgainstTshark
		case rec.Transport != "quic" || rec.QUIC == nil:
			t.Errorf("frame %d: transport %q, quic %+v", m.Frame, rec.Transport, rec.QUIC)
		case rec.QUIC.Version != fmt.Sprintf("%08x", m.QUIC.Version) || rec.QUIC.DCID != dcid || rec.QUIC.SCID != m.QUIC.SCID:
			t.Errorf("frame %d: quic version %s dcid %s scid %s; tshark %08x %s (where its first bytes went) %s", m.Frame,
				rec.QUIC.Version, rec.QUIC.DCID, rec.QUIC.SCID, m.QUIC.Version, dcid, m.QUIC.SCID)
		case !strings.HasPrefix(rec.ClientHello.JA4, "q"):
			t.Errorf("frame %d: ja4 %s does not start with q", m.Frame, rec.ClientHello.JA4)
		}
	}
	checkClientReports(t, "origin", conns, recs, o.reports(), true)
	if n := inspect.LiveAgrees(t, capPath); n != nrecs {
		t.Errorf("read live, flow by flow, %d of the capture's %d records agree", n, nrecs)
	}
	return recs
}

// TestInspectQUICv2: quic-go's client speaks QUIC version 2 (RFC 9369) to
// the origin twice, the second time with the first connection's ticket.
func TestInspectQUICv2(t *testing.T) {
	tshark := tlstest.Need(t, "tshark")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cert := tlstest.WriteCert(t, dir)
	o := startH3Origin(t, cert.TLS, false, quic.Version2)
	capPath := filepath.Join(dir, "quic.pcap")
	t.Cleanup(func() { keepCapture(t, capPath) })
	capture := tlstest.StartUDPCapture(ctx, t, o.port, capPath)

	roots := x509.NewCertPool()
	roots.AddCert(cert.TLS.Leaf)
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(4)},
		QUICConfig:      &quic.Config{Versions: []quic.Version{quic.Version2}},
	}
	var clientSays []bool
	for i := range 2 {
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(fmt.Sprintf("https://127.0.0.1:%d/v2-%d", o.port, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		clientSays = append(clientSays, resp.TLS.DidResume)
		tr.CloseIdleConnections() // the ticket came with the response; the next request dials anew
	}
	tr.Close()
	if err := capture.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if clientSays[0] || !clientSays[1] {
		t.Fatalf("quic-go's client resumed %v; want the second connection only", clientSays)
	}
	recs := checkQUICCapture(ctx, t, tshark, capPath, o)
	n := 0
	for _, rs := range recs {
		for _, r := range rs {
			n++
			if r.QUIC == nil || r.QUIC.VersionName != "v2" {
				t.Errorf("frame %d: quic %+v, want version v2", r.Frame, r.QUIC)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d records, want 2", n)
	}
}
