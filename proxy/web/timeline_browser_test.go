package web_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// box is an element's place on the page (getBoundingClientRect).
type box struct {
	Text                     string
	Left, Top, Right, Bottom float64
}

// textBoxesJS measures every text of the timeline's chart.
const textBoxesJS = `[...document.querySelectorAll('#timeline svg text')].map(e => { const r = e.getBoundingClientRect();
  return {Text: e.textContent, Left: r.left, Top: r.top, Right: r.right, Bottom: r.bottom}; })`

// overlaps returns the pairs of boxes that intersect (by more than a
// rounding error).
func overlaps(bs []box) []string {
	var out []string
	for i, a := range bs {
		for _, b := range bs[i+1:] {
			if min(a.Right, b.Right)-max(a.Left, b.Left) > 0.5 && min(a.Bottom, b.Bottom)-max(a.Top, b.Top) > 0.5 {
				out = append(out, fmt.Sprintf("%q over %q", a.Text, b.Text))
			}
		}
	}
	return out
}

var (
	clockRE = regexp.MustCompile(`\b\d{1,2}:\d{2}(:\d{2})?\b`)
	hhmmss  = regexp.MustCompile(`^\d\d:\d\d:\d\d$`)
)

// checkTimes fails the test for a time on the page that is not 24-hour
// "01:09:27" (a 12-hour time, a date with slashes), in what.
func checkTimes(t *testing.T, what string, texts []string) {
	t.Helper()
	for _, s := range texts {
		if strings.Contains(s, " AM") || strings.Contains(s, " PM") || regexp.MustCompile(`\d+/\d+/\d+`).MatchString(s) {
			t.Errorf("%s: %q is not written as the rest of the page writes times", what, s)
		}
		for _, m := range clockRE.FindAllString(s, -1) {
			if !hhmmss.MatchString(m) {
				t.Errorf("%s: %q holds the time %q, want 24-hour hh:mm:ss", what, s, m)
			}
		}
	}
}

// labelsJS counts the chart's texts that name a connection (c1, p3, …).
const labelsJS = `[...document.querySelectorAll('#timeline svg text')].filter(e => /^[a-z]+\d+\b/.test(e.textContent)).length`

// checkChart checks the timeline's chart as drawn: at least lanes
// connections labelled, no two texts over each other, every time
// written as 24-hour hh:mm:ss, and the chart as wide as its box.
func checkChart(t *testing.T, ctx context.Context, what string, lanes int) []box {
	t.Helper()
	bs := eval[[]box](t, ctx, textBoxesJS)
	if n := eval[int](t, ctx, labelsJS); n < lanes {
		t.Errorf("%s: %d connections labelled, want %d", what, n, lanes)
	}
	if o := overlaps(bs); len(o) > 0 {
		t.Errorf("%s: %d labels overlap: %s", what, len(o), strings.Join(o[:min(len(o), 5)], "; "))
	}
	texts := make([]string, len(bs))
	for i, b := range bs {
		texts[i] = b.Text
	}
	checkTimes(t, what, texts)
	if w := eval[float64](t, ctx, `document.querySelector('#timeline svg').getBoundingClientRect().width / document.querySelector('#timeline').clientWidth`); w < 0.95 {
		t.Errorf("%s: the chart takes %.0f%% of its box's width", what, 100*w)
	}
	return bs
}

// barSpan is how much of the chart's width the bars of its connections
// span, from the first one's start to the last one's end.
const barSpanJS = `(() => { const bs = [...document.querySelectorAll('#timeline rect.bar')].map(b => b.getBoundingClientRect());
  return (Math.max(...bs.map(b => b.right)) - Math.min(...bs.map(b => b.left))) / document.querySelector('#timeline svg').getBoundingClientRect().width; })()`

// TestTimelineBursts: a program's connections to a host in three bursts,
// the first a page load of 11 connections a millisecond apart, the second
// 15 minutes later (past Apple's session cache), the third 5 s after it.
// The timeline gives each connection a lane: no label overlaps another;
// each burst is headed, the long gap marked; a burst zooms to fill the
// chart; every time on it reads 01:09:27.
func TestTimelineBursts(t *testing.T) {
	t0 := time.Date(2026, 7, 12, 1, 9, 27, 0, time.Local)
	var recs []*inspect.ConnRecord
	add := func(at time.Duration, from string) {
		id := fmt.Sprintf("c4146645%d", len(recs)+1) // ids as long as a proxy's after a day
		recs = append(recs, proxyRecord(id, t0.Add(at), "localhost:9445", curlJA4, "curl/7.88.1", from))
	}
	for i := range 11 {
		add(time.Duration(i)*time.Millisecond, "")
	}
	for i := range 3 {
		add(15*time.Minute+time.Duration(i)*40*time.Millisecond, recs[i].ID)
	}
	for i := range 2 {
		add(15*time.Minute+5*time.Second+time.Duration(i)*30*time.Millisecond, recs[11+i].ID)
	}
	ctx := browser(t, viewOf(t, recs)+"/#timeline?program=curl%2F7.88.1&host=localhost%3A9445")
	waitFor(t, ctx, labelsJS+` === 16`)

	checkChart(t, ctx, "all three bursts", 16)
	heads := eval[[]string](t, ctx, `[...document.querySelectorAll('#timeline text.burst')].map(e => e.classList.contains('gap') + ' ' + e.textContent)`)
	if len(heads) != 3 || !strings.HasPrefix(heads[1], "true 01:24:27 · 3 connections") || !strings.Contains(heads[1], "Apple") || strings.HasPrefix(heads[2], "true") {
		t.Errorf("burst heads %q: want three, the second marked as 15 minutes after the first", heads)
	}
	arrows := eval[[]string](t, ctx, `[...document.querySelectorAll('#timeline path.lineage[data-leg=client]')].map(p => p.dataset.from + '>' + p.dataset.to)`)
	if strings.Join(arrows, " ") != "1>12 2>13 3>14 12>15 13>16" {
		t.Errorf("ticket arcs %v, want the records' ticket_from", arrows)
	}
	screenshot(t, ctx, "liveview-timeline-bursts.png")

	// Zoom to the page load.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#timeline [data-burst="1"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, labelsJS+` === 11`)
	bs := checkChart(t, ctx, "zoomed to the page load", 11)
	if span := eval[float64](t, ctx, barSpanJS); span < 0.5 {
		t.Errorf("zoomed to a burst of 10 ms, its bars span %.0f%% of the chart", 100*span)
	}
	ms := 0
	for _, b := range bs {
		if regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}$`).MatchString(b.Text) {
			ms++
		}
	}
	if ms < 2 {
		t.Errorf("zoomed to 10 ms, the axis has %d ticks in milliseconds", ms)
	}

	// The list and the detail write times as the timeline does.
	eval[any](t, ctx, `location.hash = "conn=1"`)
	waitFor(t, ctx, `!!document.querySelector('#legs')`)
	checkTimes(t, "the list and the detail", eval[[]string](t, ctx, `[...document.querySelectorAll('#rows .row > span:first-child, #detail-title')].map(e => e.textContent)`))
	if title := eval[string](t, ctx, `document.querySelector('#detail-title').textContent`); !strings.Contains(title, "01:09:27.000") {
		t.Errorf("the detail's title %q lacks the connection's time, 01:09:27.000", title)
	}
}

// startPageOrigin serves, on loopback with cert, a page of n images over
// HTTP/1.1 without keep-alives (each request a connection of its own, as
// tlstest.GoServer does), each image 30 ms late so that the browser opens
// its connections side by side.
func startPageOrigin(t *testing.T, cert tls.Certificate, n int) string {
	t.Helper()
	var page strings.Builder
	page.WriteString(`<!doctype html><html><body>`)
	for i := range n {
		fmt.Fprintf(&page, `<img src="/i/%d.png" alt="">`, i)
	}
	page.WriteString(`<p id="done">page loaded</p></body></html>`)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, page.String())
				return
			}
			time.Sleep(30 * time.Millisecond)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "tlsresume\n")
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	srv.SetKeepAlivesEnabled(false)
	ln := listen(t)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestPageLoadTimeline: headless Chromium loads a page of 12 images
// through the proxy, a connection each; the timeline of its connections
// to that host labels each of them in a lane of its own, no label over
// another, zoomed out and zoomed to the page load.
func TestPageLoadTimeline(t *testing.T) {
	chromium := tlstest.Need(t, "chromium")
	l := startLive(t, nil)
	origin := startPageOrigin(t, l.cert.TLS, 12)
	_, port, _ := net.SplitHostPort(origin)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dom, stderr, err := tlstest.DumpDOM(ctx, chromium, tlstest.ChromiumPage{
		URL: "https://localhost:" + port + "/", Dir: l.dir, Logf: t.Logf,
		Flags: []string{"--proxy-server=http://" + l.proxy, "--ignore-certificate-errors",
			// Chromium bypasses a proxy for loopback on its own (since M72);
			// "<-loopback>" takes that rule out (net/docs/proxy.md).
			"--proxy-bypass-list=<-loopback>"},
	})
	if err != nil || !strings.Contains(dom, `id="done"`) {
		t.Fatalf("chromium through the proxy: %v %s %s", err, tlstest.Tail(dom, 300), tlstest.Tail(stderr, 600))
	}
	host := "localhost:" + port
	var recs []*inspect.ConnRecord
	for more := true; more; {
		select {
		case r := <-l.records:
			if inspect.HostOf(r) == host {
				recs = append(recs, r)
			}
		case <-time.After(2 * time.Second): // its connections have closed by then
			more = false
		}
	}
	if len(recs) < 10 {
		t.Fatalf("chromium made %d connections to %s, want a page load of 10 or more", len(recs), host)
	}
	program := inspect.Program(recs[0])
	first, last := recs[0].Time, recs[0].Time
	for _, r := range recs {
		if r.Time.Before(first) {
			first = r.Time
		}
		if r.Time.After(last) {
			last = r.Time
		}
	}
	t.Logf("%s: %d connections to %s opened within %v", program, len(recs), host, last.Sub(first))

	bctx := browser(t, l.view+"/#timeline?program="+url.QueryEscape(program)+"&host="+url.QueryEscape(host))
	waitFor(t, bctx, fmt.Sprintf(`%s >= %d`, labelsJS, len(recs)))
	checkChart(t, bctx, "the page load", len(recs))
	// Zoomed to its burst (the chart shows the page load alone then).
	eval[any](t, bctx, `(() => { const s = document.querySelector('#timeline-pick select[name=burst]');
	  s.selectedIndex = s.options.length - 1; s.dispatchEvent(new Event('change', {bubbles: true})); })()`)
	checkChart(t, bctx, "zoomed to the page load", len(recs))
	screenshot(t, bctx, "liveview-timeline.png")
	t.Logf("the page load's bars span %.0f%% of the chart", 100*eval[float64](t, bctx, barSpanJS))
}
