package web_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
	"github.com/tlsresume/tlsresume/proxy/web"
)

var update = flag.Bool("update", false, "rewrite testdata/liveview.png, the README's screenshot")

// browser opens url in headless Chromium (chromedp drives the installed
// binary) and returns its context.
func browser(t *testing.T, url string) context.Context {
	t.Helper()
	bin := tlstest.Need(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The browser lives as long as the context of its first run, which
	// must carry no deadline (chromedp.Run); a watchdog bounds it instead.
	watchdog := time.AfterFunc(2*time.Minute, cancelCtx)
	t.Cleanup(func() { watchdog.Stop() })
	if err := tlstest.Navigate(ctx, url, t.Logf, chromedp.WaitVisible(chromedp.CSS("body[data-loaded]"))); err != nil {
		t.Fatalf("opening the view in Chromium: %v", err)
	}
	return ctx
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitRow waits, at most 2 s, for the page's row of r to show r's verdict.
func waitRow(t *testing.T, ctx context.Context, r *inspect.ConnRecord) time.Duration {
	t.Helper()
	start := time.Now()
	js := fmt.Sprintf(`document.querySelector('.row[data-id=%q]')?.dataset.verdict ?? ""`, r.ID)
	for {
		if got := eval[string](t, ctx, js); got == string(r.Verdict.Code) {
			return time.Since(start)
		} else if time.Since(start) > 2*time.Second {
			t.Fatalf("%s: the page shows verdict %q 2s after the connection closed, the record says %s", r.ID, got, r.Verdict.Code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLiveViewInBrowser: headless Chromium on the live view while openssl
// (which resumes) and curl (a new process each time: it never offers what
// it got) go through the proxy. Each row appears with its record's verdict
// within 2 s; a row opens both legs; the diff of the two programs explains
// their differences; the timeline's arrows are the records' ticket_from.
func TestLiveViewInBrowser(t *testing.T) {
	openssl := tlstest.Need(t, "openssl")
	curl := tlstest.Need(t, "curl")
	l := startLive(t, nil)
	ctx := browser(t, l.view+"/")

	sess := filepath.Join(l.dir, "sess.pem")
	var recs []*inspect.ConnRecord
	for i := range 3 {
		l.openssl(openssl, sess, i == 0)
		r := l.next()
		t.Logf("%s %s shown after %v", r.ID, r.Verdict.Code, waitRow(t, ctx, r))
		recs = append(recs, r)
	}
	for range 2 {
		l.curl(curl)
		r := l.next()
		t.Logf("%s %s shown after %v", r.ID, r.Verdict.Code, waitRow(t, ctx, r))
		recs = append(recs, r)
	}
	if recs[1].Verdict.Code != inspect.CodeBothResumed || recs[4].Verdict.Code != inspect.CodeClientOfferedNothing {
		t.Fatalf("the clients did not behave as this test expects: %s, %s", recs[1].Verdict.Code, recs[4].Verdict.Code)
	}

	t.Run("detail", func(t *testing.T) {
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.row[data-id="c2"]`)), chromedp.WaitVisible(chromedp.CSS("#legs")))
		if err != nil {
			t.Fatal(err)
		}
		legs := eval[[]string](t, ctx, `[...document.querySelectorAll('#legs [data-leg]')].map(e => e.dataset.leg + '=' + e.textContent)`)
		if strings.Join(legs, " ") != "client=yes upstream=yes" {
			t.Errorf("c2's legs show %v, want both resumed", legs)
		}
		title := eval[string](t, ctx, `document.querySelector('#detail-title').textContent`)
		exts := eval[string](t, ctx, `document.querySelector('#exts').textContent`)
		text := eval[string](t, ctx, `document.querySelector('#detail-body').textContent`)
		if !strings.Contains(title, "openssl-s_client/3") || !strings.Contains(exts, "pre_shared_key") || !strings.Contains(text, "ticket from c1") {
			t.Errorf("c2's detail: title %q, extensions %q, text lacks the lineage: %s", title, exts, text)
		}
		// Its request, and the origin's certificate as the upstream leg saw it.
		req := eval[[]string](t, ctx, `[...document.querySelectorAll('#requests tbody tr:first-child td')].map(td => td.textContent)`)
		if len(req) != 6 || req[0] != "GET" || req[1] != "localhost" || req[2] != "/" || req[3] != "200" {
			t.Errorf("c2's requests table: %q, want GET localhost / 200 (its record: %+v)", req, recs[1].Requests)
		}
		cert := eval[string](t, ctx, `document.querySelector('#cert')?.textContent ?? ""`)
		if c := recs[1].UpstreamLeg.Certificate; c == nil || !strings.Contains(cert, c.Subject) || !strings.Contains(cert, c.Issuer) || !strings.Contains(cert, "verifiedyes") {
			t.Errorf("c2's origin certificate shows %q, the record has %+v", cert, recs[1].UpstreamLeg.Certificate)
		}
		for _, leg := range []string{"client", "upstream"} {
			ms := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('[data-ms=%s]').textContent`, leg))
			if !regexp.MustCompile(`^\d+(\.\d{1,3})? ms$`).MatchString(ms) {
				t.Errorf("c2's %s handshake reads %q: at most microseconds", leg, ms)
			}
		}
	})

	t.Run("timeline", func(t *testing.T) {
		err := chromedp.Do(ctx, hash("timeline?program=openssl-s_client%2F3&host=localhost%3A"+portOf(l.origin)),
			chromedp.WaitVisible(chromedp.CSS("#timeline svg")))
		if err != nil {
			t.Fatal(err)
		}
		arrows := eval[[]string](t, ctx, `[...document.querySelectorAll('#timeline path.lineage[data-leg=client]')].map(p => p.dataset.from + '>' + p.dataset.to)`)
		want := []string{}
		for i, r := range recs[:3] {
			if r.ClientLeg.TicketFrom != "" {
				want = append(want, fmt.Sprintf("%d>%d", seqOf(recs, r.ClientLeg.TicketFrom), i+1))
			}
		}
		if strings.Join(arrows, " ") != strings.Join(want, " ") {
			t.Errorf("timeline arrows %v, want %v (from ticket_from)", arrows, want)
		}
	})

	t.Run("diff", func(t *testing.T) {
		err := chromedp.Do(ctx, hash("diff?a=program%3Dopenssl&b=program%3Dcurl"),
			chromedp.WaitVisible(chromedp.CSS("#diff-table")))
		if err != nil {
			t.Fatal(err)
		}
		rows := eval[[]map[string]string](t, ctx, `[...document.querySelectorAll('#diff-table tr.differs')].map(r => ({field: r.dataset.field, meaning: r.querySelector('.meaning').textContent}))`)
		explained := map[string]string{}
		for _, r := range rows {
			explained[r["field"]] = r["meaning"]
		}
		b, _ := json.MarshalIndent(explained, "", "  ")
		t.Logf("explained differences: %s", b)
		found := false
		for field, meaning := range explained {
			if strings.Contains(field, "pre_shared_key") && meaning != "" {
				found = true
			}
		}
		if !found {
			t.Errorf("the diff of openssl and curl does not explain their pre_shared_key: %s", b)
		}
		// Resumption first; differences marked; fingerprints folded, a line a
		// side, each value a click away.
		sections := eval[[]string](t, ctx, `[...document.querySelectorAll('#diff-table tr.section')].map(r => r.dataset.section)`)
		if strings.Join(sections, " ") != "resumption hello" {
			t.Errorf("the diff's sections: %v, want resumption first, then the hellos", sections)
		}
		unmarked := eval[[]string](t, ctx, `[...document.querySelectorAll('#diff-table tr.differs')].filter(r => r.querySelector('td.mark').textContent !== '≠').map(r => r.dataset.field)`)
		if len(unmarked) > 0 {
			t.Errorf("rows that differ, unmarked: %v", unmarked)
		}
		folded := eval[map[string]any](t, ctx, `(() => { const d = document.querySelector('#diff-fingerprints'); const ja4 = d?.querySelector('tr[data-field=ja4]');
		  return {open: d?.open, inMain: !!document.querySelector('#diff-table tr[data-field=ja4]'), shown: !!ja4 && ja4.checkVisibility(),
		    brief: ja4?.children[2].querySelector('summary')?.textContent ?? ja4?.children[2].textContent}; })()`)
		var d inspect.Diff
		if _, body := l.get("GET", "/api/diff?a=program%3Dopenssl&b=program%3Dcurl", nil); json.Unmarshal([]byte(body), &d) != nil {
			t.Fatalf("/api/diff: %s", body)
		}
		brief := ""
		for _, row := range d.Rows {
			if row.Field == "ja4" && row.Fingerprint {
				brief = row.ABrief
			}
		}
		if folded["open"] != false || folded["inMain"] != false || folded["shown"] != false || brief == "" || folded["brief"] != brief {
			t.Errorf("the fingerprint rows: %v, want folded away from the others, ja4's A side in brief (%q)", folded, brief)
		}
		eval[any](t, ctx, `document.querySelector('#diff-fingerprints').open = true`)
		if shown := eval[bool](t, ctx, `document.querySelector('#diff-fp tr[data-field=ja4]').checkVisibility()`); !shown {
			t.Error("the fingerprint rows do not show when unfolded")
		}
		screenshot(t, ctx, "liveview-diff.png")
		eval[any](t, ctx, `document.querySelector('#diff-fingerprints').open = false`)
	})

	// Last: a client that rejects the certificate is passed through, the CA
	// tab lists it with the trigger, and its button intercepts it again.
	t.Run("auto-passthrough", func(t *testing.T) {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tlstest.Run(rctx, "", openssl, "s_client", "-proxy", l.proxy, "-connect", l.origin, "-servername", "localhost",
			"-verify_return_error", "-tls1_3")
		r := l.next()
		err := chromedp.Do(ctx, hash("ca"), chromedp.WaitVisible(chromedp.CSS("#pass-reset")))
		if err != nil {
			t.Fatal(err)
		}
		row := eval[string](t, ctx, `document.querySelector('#auto-passthrough tbody tr').textContent`)
		if !strings.Contains(row, "localhost") || !strings.Contains(row, "unknown_ca") || !strings.Contains(row, r.ID) {
			t.Errorf("the CA tab's row: %q", row)
		}
		if *update {
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err == nil {
				err = os.WriteFile(filepath.Join("testdata", "liveview-ca.png"), png, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#pass-reset")), chromedp.WaitNotPresent(chromedp.CSS("#pass-reset"))); err != nil {
			t.Fatal(err)
		}
		// Its detail says first what fixes it.
		if r.Verdict.Fix == "" {
			t.Fatalf("%s failed with %s and no fix", r.ID, r.Verdict.Code)
		}
		if err := chromedp.Do(ctx, hash(fmt.Sprintf("conn=%d", seqOf(append(recs, r), r.ID))), chromedp.WaitVisible(chromedp.CSS("#detail-fix"))); err != nil {
			t.Fatal(err)
		}
		fix := eval[string](t, ctx, `document.querySelector('#detail-fix').textContent`)
		first := eval[bool](t, ctx, `document.querySelector('#detail-body .verdict-text').nextElementSibling.id === 'detail-fix'`)
		if !strings.Contains(fix, r.Verdict.Fix) || !first {
			t.Errorf("%s's detail shows the fix %q (right after the verdict: %v), want %q", r.ID, fix, first, r.Verdict.Fix)
		}
		screenshot(t, ctx, "liveview-fix.png")
		if code, body := l.get("GET", "/api/passthrough", nil); code != 200 || strings.Contains(body, "localhost") {
			t.Errorf("after the button: %d %s", code, body)
		}
	})

	if *update {
		shot := func(name string, steps ...chromedp.Action[chromedp.Void]) {
			if err := chromedp.Do(ctx, append(steps, chromedp.Sleep(300*time.Millisecond))...); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("testdata", name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		shot("liveview.png", hash("conns"), script(`document.querySelector('#close-detail').click()`))
		shot("liveview-detail.png", hash("conn=2"), chromedp.WaitVisible(chromedp.CSS("#legs")))
		shot("liveview-detail-requests.png", hash("conn=2"), chromedp.WaitVisible(chromedp.CSS("#requests")),
			script(`document.querySelector('#requests').previousElementSibling.scrollIntoView()`))
	}
}

// hash moves the page to one of its views, as a click on a link does (a
// Navigate to the same page with another fragment fires no load event).
func hash(h string) chromedp.Action[chromedp.Void] {
	return script(fmt.Sprintf("location.hash = %q", h))
}

// script runs JavaScript in the page, as a step.
func script(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](js)(ctx, t)
		return err
	})
}

// seqOf is the view's row number of connection id: connections are
// numbered as they open, c1 first.
func seqOf(recs []*inspect.ConnRecord, id string) int {
	for i, r := range recs {
		if r.ID == id {
			return i + 1
		}
	}
	return 0
}

// TestHundredThousandRecords: the view holds 100,000 records (copies of
// real ones, as `tlsresume web` would load them) and the page shows them
// all, drawing only what is on screen: it reports how long the page takes
// to show them, and how long a jump to the middle of the list takes to draw.
func TestHundredThousandRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 100,000 records into a browser")
	}
	openssl := tlstest.Need(t, "openssl")
	l := startLive(t, nil)
	sess := filepath.Join(l.dir, "sess.pem")
	var real []*inspect.ConnRecord
	for i := range 2 {
		l.openssl(openssl, sess, i == 0)
		real = append(real, l.next())
	}
	const n = 100_000
	view := web.New(web.Config{History: n})
	for i := range n {
		r := *real[i%2]
		r.ID = fmt.Sprintf("c%d", i+1)
		view.Add(&r)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	start := time.Now()
	bctx := browser(t, "http://"+ln.Addr().String()+"/")
	shown := time.Since(start)
	if got := eval[string](t, bctx, `document.body.dataset.loaded`); got != fmt.Sprint(n) {
		t.Fatalf("the page loaded %s rows, want %d", got, n)
	}
	if rows := eval[int](t, bctx, `document.querySelectorAll('#rows .row').length`); rows == 0 || rows > 100 {
		t.Errorf("%d rows in the document: the list must draw only what is on screen", rows)
	}
	jump := time.Now()
	eval[any](t, bctx, `(() => { const l = document.querySelector('#list'); l.scrollTop = l.scrollHeight / 2; })()`)
	for eval[string](t, bctx, `document.querySelector('#rows .row')?.dataset.id ?? ""`) == "c100000" {
		if time.Since(jump) > 2*time.Second {
			t.Fatal("the list did not redraw after a scroll")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("100,000 records shown %s ms after navigation began (%v with the browser's start); a jump to the middle drawn in %v",
		eval[string](t, bctx, `document.body.dataset.loadedMs`), shown, time.Since(jump))
}

// TestQUICCaptureInBrowser: a browser's capture with QUIC and TCP hellos
// (FoxIO's tls3.pcapng, from the JA4 corpus beside the repository), served
// as `tlsresume web` serves it: QUIC rows are marked, a QUIC connection's
// detail shows its version, connection IDs and the ServerHello that
// resumed it, and the summary names each row's transport.
func TestQUICCaptureInBrowser(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "corpora", "ja4corpus", "captures", "tls3.pcapng")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("JA4 corpus not found beside the repository (%v); CI has it at ../shared/corpora", err)
	}
	defer f.Close()
	view := web.New(web.Config{History: 1000})
	var recs []*inspect.ConnRecord
	if _, err := inspect.ReadCapture(f, func(r *inspect.Record) error {
		recs = append(recs, &inspect.ConnRecord{Record: *r, ID: fmt.Sprintf("p%d", len(recs)+1)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	view.Add(recs...)
	var quic *inspect.ConnRecord // the resumed QUIC connection to rsms.me
	for _, r := range recs {
		if r.Transport == inspect.TransportNameQUIC && r.ServerHello != nil && r.ServerHello.Resumed {
			quic = r
		}
	}
	if quic == nil {
		t.Fatal("tls3.pcapng holds no resumed QUIC connection")
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	bctx := browser(t, "http://"+ln.Addr().String()+"/")

	quicRows := eval[int](t, bctx, `[...document.querySelectorAll('#rows .row')].filter(r => r.querySelector('.quic')).length`)
	if quicRows == 0 {
		t.Error("no row is marked QUIC")
	}
	if err := chromedp.Do(bctx, hash(fmt.Sprintf("conn=%d", seqOf(recs, quic.ID))), chromedp.WaitVisible(chromedp.CSS("#quic"))); err != nil {
		t.Fatal(err)
	}
	text := eval[string](t, bctx, `document.querySelector('#detail-body').textContent`)
	for _, want := range []string{"v1", quic.QUIC.DCID, "yes, by psk", "initial_max_data"} {
		if !strings.Contains(text, want) {
			t.Errorf("the detail of %s lacks %q: %s", quic.ID, want, text)
		}
	}
	if *update {
		png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(filepath.Join("testdata", "liveview-quic.png"), png, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(bctx, hash("summary"), chromedp.WaitVisible(chromedp.CSS("#summary tbody tr"))); err != nil {
		t.Fatal(err)
	}
	over := eval[[]string](t, bctx, `[...document.querySelectorAll('#summary tbody tr')].map(r => r.children[5].textContent)`)
	if !slices.Contains(over, "quic") || !slices.Contains(over, "tcp") {
		t.Errorf("the summary's transport column reads %v", over)
	}
}

// TestCrossSitePageRefused: a page on another loopback origin that asks
// the view for its whole history with fetch(no-cors), eighteen times, as
// a hostile page in the user's browser can (a loopback view has no token),
// is refused by the server: the view counts every request to /api/events
// and answers none of them.
func TestCrossSitePageRefused(t *testing.T) {
	view := web.New(web.Config{})
	var mu sync.Mutex
	status := map[int]int{} // /api/events answers by status
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/events" {
			view.Handler().ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		view.Handler().ServeHTTP(sw, r)
		mu.Lock()
		status[sw.code]++
		mu.Unlock()
	})
	vln := listen(t)
	srv := &http.Server{Handler: counted}
	go srv.Serve(vln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(vln.Addr().String())

	// The other site: 127.0.0.1 on another port (same-site, another
	// origin) and localhost (another site).
	page := fmt.Sprintf(`<!doctype html><body><script>
for (let i = 0; i < 18; i++) {
  const host = i %% 2 ? "127.0.0.1" : "localhost";
  fetch("http://" + host + ":%s/api/events?last_event_id=0", {mode: "no-cors"}).catch(() => {});
}
document.body.dataset.loaded = "1";
</script>`, port)
	pln := listen(t)
	psrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})}
	go psrv.Serve(pln)
	t.Cleanup(func() { psrv.Close() })
	browser(t, "http://"+pln.Addr().String()+"/")

	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n, refused := 0, status[http.StatusForbidden]
		for _, c := range status {
			n += c
		}
		got := fmt.Sprint(status)
		mu.Unlock()
		if n >= 18 {
			if refused != 18 {
				t.Fatalf("the other site's 18 requests were answered %s, want all 403", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the view has answered %d of the other site's 18 requests (%s): the rest are being served", n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusWriter notes the status a handler answers with; it still flushes
// and unwraps, for a stream.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
