package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tlsresume/tlsresume/inspect"
)

// waitFor polls the page's JavaScript expression js, at most 5 s, until
// it is true.
func waitFor(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !eval[bool](t, ctx, js) {
		if time.Now().After(deadline) {
			t.Fatalf("the page did not come to %s within 5 s", js)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// summaryRow is a row of clients × hosts as the page shows it.
type summaryRow struct {
	Host, Program, Likely string
	Reasons               []struct{ Key, Text string }
}

const summaryRowsJS = `[...document.querySelectorAll('#summary tbody tr')].map(tr => ({
  Host: tr.querySelector('td.host')?.textContent ?? tr.children[4].textContent,
  Program: tr.children[3].textContent,
  Likely: tr.querySelector('.likely')?.textContent ?? "",
  Reasons: [...tr.querySelectorAll('li[data-key]')].filter(li => li.offsetHeight > 0).map(li => ({Key: li.dataset.key, Text: li.textContent}))}))`

// TestSummaryInBrowser: clients × hosts shows a mixed row's connections
// counted reason by reason ("15 of 27 resumed", "10 of 27 offered
// nothing …"), each reason a line of its own; names the program a JA4
// likely is, marked as likely, where no User-Agent named it; and keeps
// hosts apart by port: the list, the summary and the filters show and
// select host:port, and host=name:443 selects a host shown without it.
func TestSummaryInBrowser(t *testing.T) {
	t0 := time.Date(2026, 7, 12, 1, 9, 27, 0, time.Local)
	recs := mixedRow(t0)
	recs = append(recs,
		proxyRecord("o1", t0.Add(3*time.Second), "localhost:9446", curlJA4, "curl/7.88.1", ""),
		proxyRecord("a1", t0.Add(4*time.Second), "api.example.com:443", appleJA4, "", ""),
		proxyRecord("a2", t0.Add(5*time.Second), "api.example.com:443", appleJA4, "", ""))
	view := viewOf(t, recs)
	ctx := browser(t, view+"/#summary")
	waitFor(t, ctx, `document.querySelectorAll('#summary tbody tr').length === 3`)
	rows := eval[[]summaryRow](t, ctx, summaryRowsJS)
	byHost := map[string]summaryRow{}
	for _, r := range rows {
		byHost[r.Host] = r
	}
	hosts := slices.Sorted(func(yield func(string) bool) {
		for h := range byHost {
			yield(h)
		}
	})
	if strings.Join(hosts, " ") != "api.example.com localhost:9445 localhost:9446" {
		t.Errorf("the summary's hosts: %v, want each port of localhost apart", hosts)
	}

	mixed := byHost["localhost:9445"]
	want := []struct{ key, text string }{
		{"resumed", "15 of 27 resumed"},
		{"offered_nothing", "10 of 27 offered nothing although a ticket issued before they started was still unused client_offered_nothing"},
		{"nothing_to_resume", "2 of 27 had nothing to resume: no ticket had been issued before they started"},
	}
	if len(mixed.Reasons) != len(want) {
		t.Fatalf("the mixed row shows %d reasons, want %d, one line each: %+v", len(mixed.Reasons), len(want), mixed)
	}
	for i, w := range want {
		if got := mixed.Reasons[i]; got.Key != w.key || strings.TrimSpace(got.Text) != w.text {
			t.Errorf("reason %d: %s %q, want %s %q", i+1, got.Key, got.Text, w.key, w.text)
		}
	}
	if mixed.Likely != "" {
		t.Errorf("curl's row, named by its User-Agent, shows a likely program: %q", mixed.Likely)
	}
	apple := byHost["api.example.com"]
	if apple.Likely != inspect.LikelyProgram(appleJA4) || !strings.HasPrefix(apple.Program, inspect.JA4Program(appleJA4)) {
		t.Errorf("the row its JA4 names: program %q, likely %q, want %q beside %s", apple.Program, apple.Likely, inspect.LikelyProgram(appleJA4), inspect.JA4Program(appleJA4))
	}
	screenshot(t, ctx, "liveview-summary.png")

	// The list's host filter, as a selector's host= selects.
	for _, tt := range []struct {
		filter string
		want   []string // hosts of the rows shown
	}{
		{"localhost:9445", []string{"localhost:9445"}},
		{"localhost:9446", []string{"localhost:9446"}},
		{"localhost", []string{"localhost:9445", "localhost:9446"}},
		{"api.example.com:443", []string{"api.example.com"}},
	} {
		eval[any](t, ctx, fmt.Sprintf(`(() => { location.hash = "conns"; const f = document.querySelector('#filters');
		  f.host.value = %q; f.dispatchEvent(new Event('input', {bubbles: true})); })()`, tt.filter))
		n := 0
		for _, r := range recs {
			if slices.Contains(tt.want, inspect.HostOf(r)) {
				n++
			}
		}
		waitFor(t, ctx, fmt.Sprintf(`document.querySelector('#counts').textContent.includes(", %d shown")`, n))
		shown := eval[[]string](t, ctx, `[...new Set([...document.querySelectorAll('#rows .row')].map(r => r.children[2].textContent))].sort()`)
		if !slices.Equal(shown, tt.want) {
			t.Errorf("host filter %q shows hosts %v, want %v", tt.filter, shown, tt.want)
		}
	}

	// The summary's link to a row's connections selects its port only.
	eval[any](t, ctx, `location.hash = "summary"`)
	waitFor(t, ctx, `!!document.querySelector('#summary a[data-host="localhost:9446"]')`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#summary a[data-host="localhost:9446"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, `document.querySelector('#counts').textContent.includes(", 1 shown")`)

	// And the API, with a selector.
	resp, err := http.Get(view + "/api/rows?sel=" + "host%3Dlocalhost%3A9445")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Records []struct{ Host string } }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || len(p.Records) != 27 {
		t.Errorf("/api/rows?sel=host=localhost:9445: %d rows, %v; want 27", len(p.Records), err)
	}

	// The timeline of a program on all its hosts (a program with no host=):
	// each lane names its host and port.
	eval[any](t, ctx, `location.hash = "timeline?program=curl%2F7.88.1"`)
	waitFor(t, ctx, labelsJS+` === 28`)
	checkChart(t, ctx, "curl on all its hosts", 28)
	hostsShown := eval[[]string](t, ctx, `[...new Set([...document.querySelectorAll('#timeline text.label')].map(e => e.firstChild.textContent.split(/\s+/)[2]))].sort()`)
	if strings.Join(hostsShown, " ") != "localhost:9445 localhost:9446" {
		t.Errorf("the timeline of curl on all hosts labels hosts %v", hostsShown)
	}
}
