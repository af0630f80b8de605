package inspect

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// hostileRecords: a connection whose SNI, ALPN, User-Agent and error texts
// carry terminal escapes (a peer chose them, or a file holds them), then a
// plain one to compare it with.
func hostileRecords() []*ConnRecord {
	ch := openSSLHello(false)
	ch.ALPN = []string{tlstest.HostileALPN, "http/1.1"}
	bad := proxyRecord("c1", 0, tlstest.HostileUserAgent, ch, ClientLeg{Version: "1.3", Error: "x509: not " + tlstest.HostileSNI},
		false, Verdict{Code: CodeUpstreamFailed, Client: CodeClientFirstContact, Upstream: CodeUpstreamFailed,
			Text: "upstream: failed: x509: certificate is valid for a.test, not " + tlstest.HostileSNI})
	bad.SNI, bad.Target = tlstest.HostileSNI, tlstest.HostileSNI+":443"
	bad.ClientAddr = "10.0.0.1:1\x1b[2K" // a file's record may hold anything
	bad.Error = "x509: certificate is valid for a.test, not " + tlstest.HostileSNI + "\nforged line"
	plain := proxyRecord("c2", 1, "curl/8.5.0", openSSLHello(false), ClientLeg{Version: "1.3"}, true,
		Verdict{Code: CodeClientFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamResumed})
	return []*ConnRecord{bad, plain}
}

// TestTableHostile: inspect's table shows a hostile SNI, address and error
// escaped, and its columns stay aligned.
func TestTableHostile(t *testing.T) {
	var out bytes.Buffer
	tw := NewTableWriter(&out)
	for _, r := range hostileRecords() {
		if err := tw.Write(&r.Record); err != nil {
			t.Fatal(err)
		}
	}
	tlstest.CheckTerminal(t, "inspect table", out.String(), false)
	for _, want := range []string{`\x1b]0;PWNED`, tlstest.HostileSNIShown + `\nforged line`, `\x1b[2K`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table does not show %q:\n%s", want, out.String())
		}
	}
	at := 0
	for _, c := range tableColumns[:3] {
		at += c.width + 1
	}
	checkColumns(t, out.String(), 2, tableColumns[3].name, at)
}

// checkColumns: in each of the table's rows (its unindented lines after
// the header, of which there must be n), the column named name starts
// where it does in the header, after a space, and holds something.
func checkColumns(t *testing.T, table string, n int, name string, at int) {
	t.Helper()
	lines := strings.Split(table, "\n")
	header := lines[0]
	if h := []rune(header); len(h) < at || !strings.HasPrefix(string(h[at:]), name) {
		t.Fatalf("the header has no %s at column %d: %q", name, at, header)
	}
	var rows []string
	for _, l := range lines[1:] {
		if l != "" && !strings.HasPrefix(l, " ") {
			rows = append(rows, l)
		}
	}
	if len(rows) != n {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), n, table)
	}
	for _, row := range rows {
		r := []rune(row)
		if len(r) <= at || r[at-1] != ' ' || r[at] == ' ' {
			t.Errorf("column %s does not start at %d in:\n%s\n%s", name, at, header, row)
		}
	}
}

// TestSummariesHostile: report's table shows a hostile SNI and User-Agent
// escaped, with its columns aligned.
func TestSummariesHostile(t *testing.T) {
	var out bytes.Buffer
	if err := WriteSummaries(&out, Summarize(hostileRecords())); err != nil {
		t.Fatal(err)
	}
	tlstest.CheckTerminal(t, "report table", out.String(), false)
	for _, want := range []string{`\x1b]0;PWNED`, `evil\u009b2J\x7f`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report does not show %q:\n%s", want, out.String())
		}
	}
	at := 0
	for _, c := range summaryColumns[:3] {
		at += c.width + 1
	}
	checkColumns(t, out.String(), 2, summaryColumns[3].name, at)
}

// TestWriteDiffHostile: diff's text shows a hostile SNI, ALPN and
// User-Agent escaped, in the side descriptions and the rows.
func TestWriteDiffHostile(t *testing.T) {
	recs := hostileRecords()
	a, _ := ParseSelector("conn=c1")
	b, _ := ParseSelector("conn=c2")
	d, err := CompareSelected(recs, a, b)
	if err != nil {
		t.Fatal(err)
	}
	d.A.Name = "A" + tlstest.HostileSNI // a name is shown too (the web view names sets)
	var out bytes.Buffer
	if err := WriteDiff(&out, d); err != nil {
		t.Fatal(err)
	}
	tlstest.CheckTerminal(t, "diff text", out.String(), false)
	for _, want := range []string{tlstest.HostileSNIShown, tlstest.HostileALPNShown, `evil\u009b2J\x7f`, `A\x1b]0;PWNED`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the diff does not show %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if runeLen(line) > diffWidth {
			t.Errorf("line of %d columns: %q", runeLen(line), line)
		}
	}
}
