package inspect

import (
	"bufio"
	"bytes"
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
	Client string `json:"client"` // the client's IP
	// Device is the WireGuard device whose address Client is, when its
	// records came through the tunnel.
	Device  string `json:"device,omitempty"`
	Program string `json:"program"` // User-Agent product, else the JA4 less its extension part
	Host    string `json:"host"`    // SNI, else the target or server address
	// Transport is "tcp" or "quic": a program's connections to a host over
	// each transport are summarised apart, in adjacent rows, so that
	// whether it resumes over HTTP/3 and over TCP is seen side by side.
	Transport string         `json:"transport"`
	Conns     int            `json:"conns"`
	Offered   map[string]int `json:"offered"` // attempt → connections
	Resumed   int            `json:"resumed"` // the client's handshake resumed
	Upstream  *int           `json:"upstream_resumed"`
	Verdicts  map[string]int `json:"verdicts"`
	// WhyNot says why this program does or does not resume with this
	// host, with how many connections each reason covers, commonest first,
	// each followed by the verdict code it comes from when one does: "10 of
	// 27 offered nothing although a ticket had been issued before they
	// started (client_offered_nothing); 15 resumed; 2 had nothing to
	// resume: no ticket had been issued before they started", then the
	// upstream leg's ("; upstream: 2 of 3 met an origin that issues no
	// tickets (upstream_no_ticket)"); "resumes" when every connection did,
	// "first contact only" for one that had nothing to resume.
	WhyNot string `json:"why_not"`
	// Reasons are WhyNot's reasons, one per kind, with their counts.
	Reasons []Reason `json:"why_not_reasons"`
	// LikelyProgram names the program the row's JA4 likely comes from, by
	// KnownStacks ("likely Safari/URLSession (JA4 table)"), whatever the
	// User-Agent says; empty when the table has no match. A likely match,
	// never a fact.
	LikelyProgram string `json:"likely_program,omitempty"`

	byUA bool // Program comes from a User-Agent
}

// ReadLog reads JSONL records: lines of the proxy's --log file or of
// `inspect --format jsonl`. Lines that are not records are counted in bad,
// with the first one's number, and skipped: nothing else is lost.
func ReadLog(r io.Reader) (entries []*ConnRecord, bad int, firstBad int, err error) {
	bad, firstBad, err = ReadLogFunc(r, func(e *ConnRecord) error {
		entries = append(entries, e)
		return nil
	})
	return entries, bad, firstBad, err
}

// ReadLogFunc is ReadLog calling fn with each record as it is read, so
// that a reader keeps only what it wants; an error from fn ends the
// reading and is returned.
func ReadLogFunc(r io.Reader, fn func(*ConnRecord) error) (bad int, firstBad int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		e := new(ConnRecord)
		if json.Unmarshal(line, e) != nil || (e.ClientAddr == "" && e.ClientHello == nil) {
			if bad == 0 {
				firstBad = n
			}
			bad++
			continue
		}
		e.roundDurations()
		if err := fn(e); err != nil {
			return bad, firstBad, err
		}
	}
	return bad, firstBad, sc.Err()
}

// Summarize groups entries by client IP, program and host, in order of
// first appearance.
func Summarize(entries []*ConnRecord) []*Summary {
	z := NewSummarizer()
	for _, e := range entries {
		z.Add(e)
	}
	return z.Summaries()
}

// Summarizer makes Summarize's rows one record at a time: a reader that has
// its records one by one (the live view unpacks them into one reused
// record) summarizes any number in little memory. Of each record it keeps
// only what a row's why-not is decided by (whyCopy), never e's pointers.
type Summarizer struct {
	out   []*Summary
	index map[[4]string]*Summary
	why   map[*Summary]*whyRow
	// Rows of one client and host stay together, in the order the pair
	// first appeared, whatever their program and transport.
	pairs  map[[2]string]int
	pairOf map[*Summary]int
}

// NewSummarizer returns a Summarizer with no records yet.
func NewSummarizer() *Summarizer {
	return &Summarizer{index: map[[4]string]*Summary{}, why: map[*Summary]*whyRow{},
		pairs: map[[2]string]int{}, pairOf: map[*Summary]int{}}
}

// Add counts e.
func (z *Summarizer) Add(e *ConnRecord) {
	if e.ServerHello != nil && e.ServerHello.HRR {
		return // the retried hello that follows is the one that counts
	}
	k := [4]string{clientIP(e.ClientAddr), Program(e), HostOf(e), e.TransportName()}
	s := z.index[k]
	if s == nil {
		s = &Summary{Client: k[0], Device: e.Device, Program: k[1], Host: k[2], Transport: k[3], Offered: map[string]int{}, Verdicts: map[string]int{},
			byUA: ProgramName(e.UserAgent) != ""}
		z.index[k] = s
		z.why[s] = &whyRow{}
		pair := [2]string{k[0], k[2]}
		if _, ok := z.pairs[pair]; !ok {
			z.pairs[pair] = len(z.pairs)
		}
		z.pairOf[s] = z.pairs[pair]
		z.out = append(z.out, s)
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
	w := z.why[s]
	w.recs = append(w.recs, whyCopy(e))
}

// Summaries returns the rows of the records added so far.
func (z *Summarizer) Summaries() []*Summary {
	out := slices.Clone(z.out)
	for _, s := range out {
		recs := z.why[s].recs
		s.Reasons = z.why[s].reasons()
		s.WhyNot = whyNotText(s.Reasons, s.Conns)
		s.LikelyProgram = likelyProgram(recs)
	}
	slices.SortStableFunc(out, func(a, b *Summary) int { return z.pairOf[a] - z.pairOf[b] })
	return out
}

func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// summaryColumns: widths, 119 columns in all; each row's why-not follows
// on lines of its own, indented, as a column of it would wrap to a few
// words a line.
var summaryColumns = []struct {
	name  string
	width int
}{
	{"CLIENT", 15}, {"PROGRAM", 23}, {"HOST", 26}, {"OVER", 4}, {"CONNS", 5}, {"OFFERED", 24}, {"RESUMED", 7}, {"UPSTREAM", 8},
}

// summaryIndent starts a row's further lines: its likely program, when the
// program was named by its JA4, and WHY NOT.
const summaryIndent = "    "

// WriteSummaries prints summaries as a table for a 120-column terminal:
// one line of counts per row, then, indented, "likely …" when the program
// has no User-Agent and the JA4 table knows its stack, and "why not: …"
// wrapped within 120 columns. A WireGuard device's client reads "phone
// (10.73.0.2)": its column widens, the host's narrows.
func WriteSummaries(w io.Writer, sums []*Summary) error {
	widths := make([]int, len(summaryColumns))
	head := make([]string, len(summaryColumns))
	for i, c := range summaryColumns {
		widths[i], head[i] = c.width, c.name
	}
	for _, s := range sums {
		widths[0] = min(max(widths[0], runeLen(clientCell(s))), maxClientWidth)
	}
	widths[2] -= widths[0] - summaryColumns[0].width
	var b strings.Builder
	b.WriteString(summaryLine(head, widths))
	b.WriteString(summaryIndent + "WHY NOT\n")
	for _, s := range sums {
		up := "-"
		if s.Upstream != nil {
			up = fmt.Sprintf("%d/%d", *s.Upstream, s.Conns)
		}
		b.WriteString(summaryLine([]string{clientCell(s), s.Program, s.Host, orDash(s.Transport), strconv.Itoa(s.Conns), countWords(s.Offered),
			fmt.Sprintf("%d/%d", s.Resumed, s.Conns), up}, widths))
		if s.LikelyProgram != "" && !s.byUA {
			writeIndented(&b, s.LikelyProgram)
		}
		writeIndented(&b, "why not: "+orDash(s.WhyNot))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// maxClientWidth bounds the client column a device's name widens.
const maxClientWidth = 32

// clientCell is the client column: the IP, or "phone (10.73.0.2)".
func clientCell(s *Summary) string {
	if s.Device == "" {
		return s.Client
	}
	return s.Device + " (" + s.Client + ")"
}

func summaryLine(cells []string, widths []int) string {
	var b strings.Builder
	for i, cell := range cells {
		wd := widths[i]
		cell = fit(cell, wd)
		b.WriteString(cell + strings.Repeat(" ", wd-runeLen(cell)+1))
	}
	return strings.TrimRight(b.String(), " ") + "\n"
}

// writeIndented writes text wrapped within 120 columns, each line indented.
func writeIndented(b *strings.Builder, text string) {
	for _, l := range wrapWords(text, 120-len(summaryIndent)) {
		b.WriteString(summaryIndent + l + "\n")
	}
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

// likelyProgram is the commonest LikelyProgram of recs' hellos, the first
// seen among equals.
func likelyProgram(recs []*ConnRecord) string {
	var order []string
	byJA4 := map[string]int{}
	for _, r := range recs {
		if r.ClientHello != nil {
			if byJA4[r.ClientHello.JA4] == 0 {
				order = append(order, r.ClientHello.JA4)
			}
			byJA4[r.ClientHello.JA4]++
		}
	}
	n := map[string]int{}
	best := ""
	for _, ja4 := range order {
		if p := LikelyProgram(ja4); p != "" {
			n[p] += byJA4[ja4]
			if n[p] > n[best] {
				best = p
			}
		}
	}
	return best
}
