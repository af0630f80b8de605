package web_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/web"
)

// The JA4s of the machine's curl (OpenSSL 3.0) and of Apple's stack
// (inspect.KnownStacks), for records shaped like the proxy's.
const (
	curlJA4  = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"
	appleJA4 = "t13d2613h2_2802a3db6c62_845d286b0d67"
)

// proxyRecord is a connection through the proxy as its --log has it: to
// target (host:port), opened at, its handshake with tlsresume taking 5 ms
// and sending one ticket; from names the connection whose ticket it
// brought back ("" for none, and then it offered nothing).
func proxyRecord(id string, at time.Time, target, ja4, ua, from string) *inspect.ConnRecord {
	ch := &inspect.ClientHelloRecord{SupportedVersions: []int{0x0304, 0x0303}, PSKKeyExchangeModes: []int{1}, Attempt: inspect.AttemptNone, JA4: ja4,
		SupportedGroups: []int{29, 23}, KeyShareGroups: []int{29}, CipherSuites: []int{4865}}
	leg := &inspect.ClientLeg{Version: "1.3", TicketsSent: 1, HandshakeMS: 5, Ticket: inspect.TicketNone}
	v := inspect.Verdict{Code: inspect.CodeClientOfferedNothing, Client: inspect.CodeClientOfferedNothing, Upstream: inspect.CodeUpstreamResumed}
	if from != "" {
		ch.Attempt, ch.PreSharedKey = inspect.AttemptPSK, inspect.PSKFact{Offered: true, Identities: []inspect.PSKIdentity{{Len: 192}}, Binders: 1}
		leg.Resumed, leg.Ticket, leg.TicketFrom = true, inspect.TicketOurs, from
		v = inspect.Verdict{Code: inspect.CodeBothResumed, Client: inspect.CodeClientResumed, Upstream: inspect.CodeUpstreamResumed}
	}
	sni, _, _ := net.SplitHostPort(target)
	return &inspect.ConnRecord{Record: inspect.Record{V: inspect.SchemaVersion, Time: at, Source: inspect.SourceConnect, Transport: "tcp",
		ClientAddr: "127.0.0.1:40000", ServerAddr: target, SNI: sni, ClientHello: ch}, ID: id, Target: target, UserAgent: ua,
		ClientLeg: leg, UpstreamLeg: &inspect.UpstreamLeg{Addr: target, Resumed: true, Version: "1.3", HandshakeMS: 4}, Mirrored: &inspect.Mirrored{Tickets: true},
		BytesUp: 700, BytesDown: 1200, DurationMS: 40, Verdict: v}
}

// mixedRow is one program's 27 connections to localhost:9445, whose row
// in clients × hosts mixes three reasons: 2 had nothing to resume (they
// opened before the first ticket went out), then 15 resumed and 10
// offered nothing although tickets were waiting.
func mixedRow(t0 time.Time) []*inspect.ConnRecord {
	var recs []*inspect.ConnRecord
	add := func(at time.Duration, from string) {
		id := fmt.Sprintf("m%d", len(recs)+1)
		recs = append(recs, proxyRecord(id, t0.Add(at), "localhost:9445", curlJA4, "curl/7.88.1", from))
	}
	add(0, "")
	add(2*time.Millisecond, "") // before m1's ticket went out, at 5 ms
	for i := range 25 {
		from := ""
		if i%5 != 1 && i%5 != 3 { // 15 of the 25 bring a ticket back
			from = recs[len(recs)-1].ID
		}
		add(time.Duration(100+i*50)*time.Millisecond, from)
	}
	first := inspect.Verdict{Code: inspect.CodeFirstContact, Client: inspect.CodeClientFirstContact, Upstream: inspect.CodeUpstreamFirstContact}
	recs[0].Verdict, recs[1].Verdict = first, first
	return recs
}

// viewOf serves a view of recs (as `tlsresume web FILE` does) on a
// loopback port until the test ends, and returns its base URL.
func viewOf(t *testing.T, recs []*inspect.ConnRecord) string {
	t.Helper()
	view := web.New(web.Config{History: 10_000, Source: "fixtures"})
	view.Add(recs...)
	return "http://" + serveView(t, view)
}

// captureFile reads a capture of the JA4 corpus beside the repository into
// records named p1, p2, … as `tlsresume web` does, or skips the test when
// the corpus is not there.
func captureFile(t *testing.T, prefix string, parts ...string) []*inspect.ConnRecord {
	t.Helper()
	path := filepath.Join(append([]string{"..", "..", "..", "shared", "corpora", "ja4corpus"}, parts...)...)
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	defer f.Close()
	var recs []*inspect.ConnRecord
	if _, err := inspect.ReadCapture(f, func(r *inspect.Record) error {
		recs = append(recs, &inspect.ConnRecord{Record: *r, ID: fmt.Sprintf("%s%d", prefix, len(recs)+1)})
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// screenshot writes the page as it is to testdata/name with -update.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*update {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join("testdata", name), png, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
