package inspect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Summary is one client program talking to one host: who offered what,
// who resumed, and the commonest reason why not.
type Summary struct {
	Client   string         `json:"client"`  // the client's IP
	Program  string         `json:"program"` // User-Agent product, else the JA4 less its extension part
	Host     string         `json:"host"`    // SNI, else the target or server address
	Conns    int            `json:"conns"`
	Offered  map[string]int `json:"offered"` // attempt → connections
	Resumed  int            `json:"resumed"` // the client's handshake resumed
	Upstream *int           `json:"upstream_resumed"`
	Verdicts map[string]int `json:"verdicts"`
}

// ReadLog reads JSONL records: lines of the proxy's --log file or of
// `inspect --format jsonl`. Lines that are not records are counted in bad,
// with the first one's number, and skipped: nothing else is lost.
func ReadLog(r io.Reader) (entries []*ConnRecord, bad int, firstBad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		e := new(ConnRecord)
		if json.Unmarshal([]byte(line), e) != nil || (e.ClientAddr == "" && e.ClientHello == nil) {
			if bad == 0 {
				firstBad = n
			}
			bad++
			continue
		}
		entries = append(entries, e)
	}
	return entries, bad, firstBad, sc.Err()
}

// Summarize groups entries by client IP, program and host, in order of
// first appearance.
func Summarize(entries []*ConnRecord) []*Summary {
	var out []*Summary
	index := map[[3]string]*Summary{}
	for _, e := range entries {
		if e.ServerHello != nil && e.ServerHello.HRR {
			continue // the retried hello that follows is the one that counts
		}
		k := [3]string{clientIP(e.ClientAddr), Program(e), hostOf(e)}
		s := index[k]
		if s == nil {
			s = &Summary{Client: k[0], Program: k[1], Host: k[2], Offered: map[string]int{}, Verdicts: map[string]int{}}
			index[k] = s
			out = append(out, s)
		}
		s.Conns++
		attempt := "unreadable"
		if e.ClientHello != nil {
			attempt = string(e.ClientHello.Attempt)
		}
		s.Offered[attempt]++
		switch {
		case e.ClientLeg != nil:
			if e.ClientLeg.Resumed {
				s.Resumed++
			}
		case e.ServerHello != nil && e.ServerHello.Resumed:
			s.Resumed++
		}
		if e.UpstreamLeg != nil {
			if s.Upstream == nil {
				s.Upstream = new(int)
			}
			if e.UpstreamLeg.Resumed {
				*s.Upstream++
			}
		}
		if e.Verdict.Code != "" {
			s.Verdicts[string(e.Verdict.Code)]++
		}
	}
	return out
}

func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func hostOf(e *ConnRecord) string {
	switch {
	case e.SNI != "":
		return e.SNI
	case e.Target != "":
		return e.Target
	}
	return e.ServerAddr
}

var summaryColumns = []struct {
	name  string
	width int
}{
	{"CLIENT", 15}, {"PROGRAM", 18}, {"HOST", 18}, {"CONNS", 5}, {"OFFERED", 20}, {"RESUMED", 7}, {"UPSTREAM", 8}, {"TOP VERDICT", 0},
}

// WriteSummaries prints summaries as a table for a 120-column terminal.
func WriteSummaries(w io.Writer, sums []*Summary) error {
	var rows [][]string
	head := make([]string, len(summaryColumns))
	for i, c := range summaryColumns {
		head[i] = c.name
	}
	rows = append(rows, head)
	for _, s := range sums {
		up := "-"
		if s.Upstream != nil {
			up = fmt.Sprintf("%d/%d", *s.Upstream, s.Conns)
		}
		rows = append(rows, []string{s.Client, s.Program, s.Host, strconv.Itoa(s.Conns), countWords(s.Offered),
			fmt.Sprintf("%d/%d", s.Resumed, s.Conns), up, topVerdict(s.Verdicts)})
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			wd := summaryColumns[i].width
			if wd == 0 {
				b.WriteString(fit(cell, max(120-runeLen(b.String()), 8)))
				break
			}
			cell = fit(cell, wd)
			b.WriteString(cell + strings.Repeat(" ", wd-runeLen(cell)+1))
		}
		if _, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// countWords renders {"psk": 5, "none": 1} as "psk 5, none 1", largest first.
func countWords(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// topVerdict is the commonest verdict code (--format jsonl has them all).
func topVerdict(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	words := countWords(m)
	if i := strings.LastIndexByte(strings.SplitN(words, ", ", 2)[0], ' '); i > 0 {
		return words[:i]
	}
	return words
}
