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
	Client  string `json:"client"`  // the client's IP
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
	// WhyNot says in a few words why this program does not resume with this
	// host, ending with the verdict code it comes from when there is one:
	// "got 2 tickets, offers none (client_offered_nothing)", "upstream:
	// origin issues no tickets (upstream_no_ticket)", "first contact only",
	// or "resumes" when nothing stood in the way (see whyNot).
	WhyNot string `json:"why_not"`
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

// Summarizer makes Summarize's rows one record at a time and keeps none of
// them: a reader that has its records one by one (the live view unpacks
// them) summarizes any number in little memory.
type Summarizer struct {
	out   []*Summary
	index map[[4]string]*Summary
	why   map[*Summary]*whyFacts
	// Rows of one client and host stay together, in the order the pair
	// first appeared, whatever their program and transport.
	pairs  map[[2]string]int
	pairOf map[*Summary]int
}

// NewSummarizer returns a Summarizer with no records yet.
func NewSummarizer() *Summarizer {
	return &Summarizer{index: map[[4]string]*Summary{}, why: map[*Summary]*whyFacts{},
		pairs: map[[2]string]int{}, pairOf: map[*Summary]int{}}
}

// Add counts e. It keeps none of e's pointers (only its strings).
func (z *Summarizer) Add(e *ConnRecord) {
	if e.ServerHello != nil && e.ServerHello.HRR {
		return // the retried hello that follows is the one that counts
	}
	k := [4]string{clientIP(e.ClientAddr), Program(e), HostOf(e), e.TransportName()}
	s := z.index[k]
	if s == nil {
		s = &Summary{Client: k[0], Program: k[1], Host: k[2], Transport: k[3], Offered: map[string]int{}, Verdicts: map[string]int{}}
		z.index[k] = s
		z.why[s] = newWhyFacts()
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
	z.why[s].add(e)
}

// Summaries returns the rows of the records added so far.
func (z *Summarizer) Summaries() []*Summary {
	out := slices.Clone(z.out)
	for _, s := range out {
		s.WhyNot = z.why[s].words(s)
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

// summaryColumns: widths; the last column takes the rest of 120 and wraps.
var summaryColumns = []struct {
	name  string
	width int
}{
	{"CLIENT", 15}, {"PROGRAM", 18}, {"HOST", 16}, {"OVER", 4}, {"CONNS", 5}, {"OFFERED", 13}, {"RESUMED", 7}, {"UPSTREAM", 8}, {"WHY NOT", 0},
}

// WriteSummaries prints summaries as a table for a 120-column terminal;
// WHY NOT wraps onto further lines under itself.
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
		rows = append(rows, []string{s.Client, s.Program, s.Host, orDash(s.Transport), strconv.Itoa(s.Conns), countWords(s.Offered),
			fmt.Sprintf("%d/%d", s.Resumed, s.Conns), up, orDash(s.WhyNot)})
	}
	for _, r := range rows {
		var b strings.Builder
		for i, cell := range r {
			wd := summaryColumns[i].width
			if wd == 0 {
				indent := runeLen(b.String())
				for j, l := range wrapWords(cell, max(120-indent, 8)) {
					if j > 0 {
						b.WriteString("\n" + strings.Repeat(" ", indent))
					}
					b.WriteString(l)
				}
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

// whyFacts gathers, for one summary row, what its why-not is decided by:
// the verdicts' per-leg codes (proxy records), or what the hellos offered
// and the server did (capture records, which carry no verdict).
type whyFacts struct {
	client, upstream map[VerdictCode]int
	order            []VerdictCode // first seen first, for ties
	verdicts         bool
	ticketsSent      int
	// capture records
	hellos, offers13, modes, ticketExt, refused int
	resumedBy                                   map[Attempt]int
}

func newWhyFacts() *whyFacts {
	return &whyFacts{client: map[VerdictCode]int{}, upstream: map[VerdictCode]int{}, resumedBy: map[Attempt]int{}}
}

func (f *whyFacts) add(e *ConnRecord) {
	v := e.Verdict
	if v.Code != "" {
		f.verdicts = true
		// A leg's code when it says why not; a connection-wide code (not TLS,
		// passed through) when the legs have none.
		switch c := v.Client; {
		case c != "" && c.Family() != "resumed" && c.Family() != "first":
			f.count(f.client, c)
		case c == "" && v.Code.Family() != "resumed" && v.Code.Family() != "first":
			f.count(f.client, v.Code)
		}
		if c := v.Upstream; c.Family() == "upstream" || c == CodeUpstreamFailed {
			f.count(f.upstream, c)
		}
	}
	if e.ClientLeg != nil {
		f.ticketsSent += e.ClientLeg.TicketsSent
	}
	ch, sh := e.ClientHello, e.ServerHello
	if ch == nil {
		return
	}
	f.hellos++
	if MaxVersion(ch) >= int(VersionTLS13) {
		f.offers13++
	}
	if ch.PSKKeyExchangeModes != nil {
		f.modes++
	}
	if ch.SessionTicket.Offered {
		f.ticketExt++
	}
	switch {
	case sh == nil || !sh.Complete:
	case sh.Resumed && sh.ResumedBy != nil:
		f.resumedBy[*sh.ResumedBy]++
	case !sh.Resumed && ch.Attempt != AttemptNone:
		f.refused++
	}
}

func (f *whyFacts) count(m map[VerdictCode]int, c VerdictCode) {
	if !slices.Contains(f.order, c) {
		f.order = append(f.order, c)
	}
	m[c]++
}

// top is the commonest code of m, the first seen among equals.
func (f *whyFacts) top(m map[VerdictCode]int) VerdictCode {
	var best VerdictCode
	for _, c := range f.order {
		if m[c] > m[best] {
			best = c
		}
	}
	return best
}

// words is the why-not of s. With verdicts (proxy records): the commonest
// reason the client leg did not resume, else the upstream leg's, else
// "resumes" or "first contact only". Without (captures): what the hellos
// and the server's answers show.
func (f *whyFacts) words(s *Summary) string {
	if f.verdicts {
		if c := f.top(f.client); c != "" {
			return reasonWords(c, f.ticketsSent) + " (" + string(c) + ")"
		}
		if c := f.top(f.upstream); c != "" {
			return reasonWords(c, 0) + " (" + string(c) + ")"
		}
		if s.Resumed > 0 {
			return "resumes"
		}
		return "first contact only"
	}
	switch {
	case s.Resumed > 0 && f.resumedBy[AttemptSessionID] == s.Resumed:
		return "resumes (by session ID only)"
	case s.Resumed > 0:
		return "resumes"
	case f.refused > 0:
		return fmt.Sprintf("server refused %s", plural(f.refused, "offer", "offers"))
	case s.Conns == 1:
		return "first contact only"
	case f.hellos == 0:
		return "no readable ClientHello"
	case f.offers13 > 0 && f.modes == 0:
		// RFC 8446, Section 4.2.9: no modes, no tickets.
		return "no psk_key_exchange_modes, so no TLS 1.3 tickets"
	case f.offers13 > 0:
		return fmt.Sprintf("never offers a PSK in %d connections", s.Conns)
	case f.ticketExt == 0:
		// RFC 5077, Section 3.2: no extension, no ticket.
		return "no session_ticket extension or issued session ID"
	}
	return "asks for tickets, never offers one"
}

// reasonWords says a non-resuming verdict code in a few words.
func reasonWords(c VerdictCode, ticketsSent int) string {
	switch c {
	case CodeClientOfferedNothing:
		if ticketsSent > 0 {
			return fmt.Sprintf("got %s, offers none", plural(ticketsSent, "ticket", "tickets"))
		}
		return "offers none of its tickets"
	case CodeClientSessionIDOnly:
		return "resumes only by session ID"
	case CodeClientTicketNotOurs:
		return "offers another server's tickets"
	case CodeClientTicketExpired:
		return "its tickets had expired"
	case CodeClientTicketRefused:
		return "its ticket was refused"
	case CodeClientTicketsDisabled:
		return "tlsresume issued no tickets"
	case CodeClientRejectedCert:
		return "rejects tlsresume's certificate"
	case CodeClientHandshakeFailed:
		return "handshake failed"
	case CodeClientNoHello:
		return "no usable ClientHello"
	case CodeNotTLS:
		return "not TLS"
	case CodePassthroughNotResumed:
		return "passed through, full handshakes"
	case CodePassthroughUnknown:
		return "passed through, answer not seen"
	case CodeUpstreamCacheMiss:
		return "upstream: nothing cached"
	case CodeUpstreamCacheExpired:
		return "upstream: cached session expired"
	case CodeUpstreamCacheDropped:
		return "upstream: cached session dropped"
	case CodeUpstreamCacheOff:
		return "upstream: cache off"
	case CodeUpstreamNoTicket:
		return "upstream: origin issues no tickets"
	case CodeUpstreamTicketRefused:
		return "upstream: origin refused the ticket"
	case CodeUpstreamFailed:
		return "upstream: handshake failed"
	}
	return shortMeaning(c.Meaning())
}
