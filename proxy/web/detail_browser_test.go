package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestCaptureRowsInBrowser: connections read from captures (an iPhone's
// own traffic, nDPI's iphone.pcap, and a browser's with a resumed QUIC
// connection, FoxIO's tls3.pcapng) show in the list what a capture knows:
// whether the server resumed each and by what, in the client leg's column
// and the verdict's, no proxy leg, and the program an iPhone's JA4 likely
// is, marked as likely, where its JA4 names it.
func TestCaptureRowsInBrowser(t *testing.T) {
	recs := append(captureFile(t, "i", "apple", "captures", "iphone.pcap"), captureFile(t, "q", "captures", "tls3.pcapng")...)
	ctx := browser(t, viewOf(t, recs)+"/")
	type cells struct{ ID, Program, Client, Upstream, Verdict string }
	shown := func() map[string]cells {
		var cs []cells
		cs = eval[[]cells](t, ctx, `[...document.querySelectorAll('#rows .row')].map(r => ({ID: r.dataset.id,
		  Program: r.children[1].textContent, Client: r.children[4].textContent, Upstream: r.children[5].textContent, Verdict: r.children[6].textContent}))`)
		out := map[string]cells{}
		for _, c := range cs {
			out[c.ID] = c
		}
		return out
	}
	check := func(rows map[string]cells) (resumed, full int) {
		t.Helper()
		for _, r := range recs {
			c, ok := rows[r.ID]
			sh := r.ServerHello
			if !ok || r.ClientHello == nil || sh == nil || !sh.Complete || sh.HRR {
				continue
			}
			want, verdict := "full", "full handshake"
			if sh.Resumed {
				want, verdict = "RESUMED by "+map[inspect.Attempt]string{"psk": "PSK", "ticket": "ticket", "session_id": "session ID"}[*sh.ResumedBy], "resumed by"
				resumed++
			} else {
				full++
			}
			if !strings.HasPrefix(c.Client, want) || !strings.HasPrefix(c.Verdict, verdict) || !strings.HasPrefix(c.Upstream, "none: a capture") {
				t.Errorf("%s (server resumed: %v): client leg %q, upstream %q, verdict %q; want %q, no upstream leg, %q",
					r.ID, sh.Resumed, c.Client, c.Upstream, c.Verdict, want, verdict)
			}
		}
		return resumed, full
	}
	resumed, full := check(shown())
	if resumed == 0 || full == 0 {
		t.Errorf("the list shows %d resumed and %d full handshakes from the captures, want some of each", resumed, full)
	}
	screenshot(t, ctx, "liveview-capture.png")

	// The iPhone's rows: its JA4 names the program; the JA4 table says it
	// is likely Apple's stack.
	eval[any](t, ctx, `(() => { const f = document.querySelector('#filters'); f.program.value = 't13d26';
	  f.dispatchEvent(new Event('input', {bubbles: true})); })()`)
	waitFor(t, ctx, `[...document.querySelectorAll('#rows .row')].every(r => r.dataset.id.startsWith('i'))`)
	iphone := shown()
	_, full = check(iphone)
	likely := inspect.LikelyProgram("t13d2613h2_2802a3db6c62_845d286b0d67")
	for id, c := range iphone {
		if !strings.Contains(c.Program, strings.TrimSuffix(likely, " (JA4 table)")) || !strings.Contains(c.Program, "(JA4 table)") {
			t.Errorf("%s's program reads %q, want %q", id, c.Program, likely)
		}
	}
	if len(iphone) < 10 || full < 10 {
		t.Errorf("%d of the iPhone's rows shown, %d with their server's full handshake", len(iphone), full)
	}
}

// TestDetailFieldsInBrowser: a connection's detail shows what its record
// carries: its requests as a table, the origin's certificate, what fixes
// its failure first, the WireGuard device and the name it looked up, the
// client's alert, a probe; handshakes to the microsecond, in the record's
// JSON too; and the hello's groups named as the diff names them.
func TestDetailFieldsInBrowser(t *testing.T) {
	t0 := time.Date(2026, 7, 12, 1, 9, 27, 0, time.Local)
	groups := []int{21, 22, 26, 27, 28, 29, 258, 259, 260, 0x11ed, 0x639a}
	a := proxyRecord("c1", t0, "api.example.com:443", curlJA4, "curl/7.88.1", "")
	a.Device, a.DNSName, a.ClientAlert = "phone", "api.example.com", "unknown_ca"
	a.ClientHello.SupportedGroups, a.ClientHello.KeyShareGroups = groups, []int{0x11ec}
	tenth, fifth := 0.1, 0.2
	a.ClientLeg.HandshakeMS, a.UpstreamLeg.HandshakeMS = 2.1029999999999998, tenth+fifth // 0.30000000000000004
	for i := range inspect.MaxRequests {
		a.Requests = append(a.Requests, inspect.Request{Method: "GET", Authority: "api.example.com", Path: fmt.Sprintf("/v1/items/%d", i), Status: 200, Bytes: 512, MS: 12.5})
	}
	a.RequestCount = 25
	a.UpstreamLeg.Probe = true
	a.UpstreamLeg.Certificate = &inspect.Certificate{Subject: "CN=api.example.com", Issuer: "CN=Lab CA,O=Lab", Names: []string{"api.example.com"},
		NotBefore: t0.Add(-24 * time.Hour), NotAfter: t0.Add(90 * 24 * time.Hour), ChainLen: 2, VerifyError: "x509: certificate signed by unknown authority"}
	a.Verdict = inspect.Verdict{Code: inspect.CodeUpstreamFailed, Client: inspect.CodeClientFirstContact, Upstream: inspect.CodeUpstreamFailed,
		Text: "upstream: the origin's certificate is not trusted", Fix: "give that CA's certificate with --upstream-ca FILE.pem"}
	b := proxyRecord("c2", t0.Add(time.Second), "api.example.com:443", curlJA4, "curl/7.88.1", "")
	view := viewOf(t, []*inspect.ConnRecord{a, b})

	// The record's JSON: microseconds at most.
	body := getBody(t, view+"/api/records")
	if !strings.Contains(body, `"handshake_ms":2.103}`) || !strings.Contains(body, `"handshake_ms":0.3,`) || strings.Contains(body, "0000000") || strings.Contains(body, "9999999") {
		t.Errorf("/api/records: handshake_ms not at microseconds: %s", body)
	}

	ctx := browser(t, view+"/#conn=1")
	waitFor(t, ctx, `!!document.querySelector('#legs')`)
	var names []string
	for _, g := range groups {
		names = append(names, inspect.GroupName(g))
	}
	if got := eval[string](t, ctx, `document.querySelector('#groups').textContent`); got != strings.Join(names, ", ") {
		t.Errorf("groups read %q, want %q", got, strings.Join(names, ", "))
	}
	var d inspect.Diff
	if err := json.Unmarshal([]byte(getBody(t, view+"/api/diff?a="+url.QueryEscape("conn=c1")+"&b="+url.QueryEscape("conn=c2"))), &d); err != nil {
		t.Fatal(err)
	}
	for _, row := range d.Rows {
		if row.Field == "supported_groups" && !strings.Contains(row.A, strings.Join(names, ", ")) {
			t.Errorf("the diff names c1's groups %q, the detail %q", row.A, strings.Join(names, ", "))
		}
	}
	for leg, want := range map[string]string{"client": "2.103 ms", "upstream": "0.3 ms"} {
		if got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-ms=%s]').textContent`, leg)); got != want {
			t.Errorf("the %s leg's handshake reads %q, want %q", leg, got, want)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#requests tbody tr').length`); n != inspect.MaxRequests {
		t.Errorf("%d requests in the table, want %d", n, inspect.MaxRequests)
	}
	text := eval[string](t, ctx, `document.querySelector('#detail-body').innerText`)
	for _, want := range []string{
		"Requests (the first 20 of 25)", "/v1/items/19",
		"CN=Lab CA,O=Lab", "x509: certificate signed by unknown authority", "2 certificates sent",
		"phone", "api.example.com", "unknown_ca", "probe",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the detail lacks %q:\n%s", want, text)
		}
	}
	fix := eval[string](t, ctx, `document.querySelector('#detail-fix')?.textContent ?? ""`)
	if !strings.Contains(fix, a.Verdict.Fix) {
		t.Errorf("the fix reads %q, want %q", fix, a.Verdict.Fix)
	}
	if title := eval[string](t, ctx, `document.querySelector('#detail-title').textContent`); !strings.Contains(title, "phone (127.0.0.1:40000)") {
		t.Errorf("the title %q does not name the device", title)
	}
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, b)
	}
	return string(b)
}
