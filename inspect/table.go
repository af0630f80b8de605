package inspect

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TableWriter prints records as a table that fits a 120-column terminal:
// one line of facts per ClientHello, and an indented second line with its
// JA4 and, in words, why it did or did not resume.
type TableWriter struct {
	w      io.Writer
	header bool
	rows   int
}

// NewTableWriter returns a TableWriter printing to w.
func NewTableWriter(w io.Writer) *TableWriter { return &TableWriter{w: w} }

// Column widths; their sum plus separators is 120.
var tableColumns = []struct {
	name  string
	width int
}{
	{"TIME", 8}, {"CLIENT → SERVER", 39}, {"SNI", 18}, {"VERSION", 7}, {"ATTEMPT", 10},
	{"TKT", 4}, {"PSK", 3}, {"MODES", 5}, {"ED", 3}, {"SID", 3}, {"RESUMED", 10},
}

// Header prints the column names, once; Write calls it, and a caller with
// no records calls it to print an empty table.
func (t *TableWriter) Header() error {
	if t.header {
		return nil
	}
	t.header = true
	cells := make([]string, len(tableColumns))
	for i, c := range tableColumns {
		cells[i] = c.name
	}
	_, err := io.WriteString(t.w, formatRow(cells))
	return err
}

// Write prints one record.
func (t *TableWriter) Write(r *Record) error {
	if err := t.Header(); err != nil {
		return err
	}
	t.rows++
	_, err := io.WriteString(t.w, formatRow(rowCells(r))+secondLine(r))
	return err
}

// Rows returns how many records were written.
func (t *TableWriter) Rows() int { return t.rows }

func formatRow(cells []string) string {
	var b strings.Builder
	for i, c := range cells {
		w := tableColumns[i].width
		c = fit(c, w)
		b.WriteString(c)
		if i < len(cells)-1 {
			b.WriteString(strings.Repeat(" ", w-runeLen(c)+1))
		}
	}
	return strings.TrimRight(b.String(), " ") + "\n"
}

func rowCells(r *Record) []string {
	cells := []string{r.Time.Format("15:04:05"), connCell(r.ClientAddr, r.ServerAddr, tableColumns[1].width), orDash(r.SNI)}
	ch := r.ClientHello
	if ch == nil {
		return append(cells, "", "error")
	}
	version := versionsCell(ch)
	if r.Transport == TransportNameQUIC {
		version = "q" + version // JA4's marker: TLS carried in QUIC
	}
	cells = append(cells,
		version,
		string(ch.Attempt),
		ticketCell(ch.SessionTicket),
		pskCell(ch.PreSharedKey),
		modesCell(ch.PSKKeyExchangeModes),
		yesDash(ch.EarlyData),
		strconv.Itoa(ch.SessionIDLen),
		resumedCell(r.ServerHello),
	)
	return cells
}

// connCell shows "client → server" in w runes, shortening the client
// address from the left first, so the server's address and port survive.
func connCell(client, server string, w int) string {
	const arrow = " → "
	client, server = Printable(client), Printable(server)
	room := w - runeLen(arrow) - runeLen(server)
	if runeLen(client) > room {
		if room < 6 {
			return fit(client+arrow+server, w)
		}
		rs := []rune(client)
		client = "…" + string(rs[len(rs)-room+1:])
	}
	return client + arrow + server
}

// secondLine gives the JA4 and the explanation, then the program the JA4
// likely comes from when the JA4 table knows it, word-wrapped so that no
// line passes 120 columns; continuation lines align under the explanation.
func secondLine(r *Record) string {
	const width, indent = 120, "         "
	head, text := indent, Explain(r)
	if r.ClientHello != nil {
		head += "ja4 " + Printable(r.ClientHello.JA4) + "  "
		if p := LikelyProgram(r.ClientHello.JA4); p != "" {
			text += "; " + p
		}
	}
	pad := strings.Repeat(" ", runeLen(head))
	var b strings.Builder
	line, n := head, runeLen(head)
	for i, word := range strings.Fields(Printable(text)) {
		w := runeLen(word)
		if i > 0 && n+1+w > width {
			b.WriteString(line + "\n")
			line, n = pad+word, runeLen(pad)+w
			continue
		}
		if i > 0 {
			line += " "
			n++
		}
		line += word
		n += w
	}
	b.WriteString(line + "\n")
	return b.String()
}

// versionsCell shows the offered range, e.g. "1.2-1.3", GREASE left out.
func versionsCell(ch *ClientHelloRecord) string {
	lo, hi := 0, 0
	for _, v := range ch.SupportedVersions {
		if IsGREASE(uint16(v)) {
			continue
		}
		if lo == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	if hi == 0 {
		return VersionName(uint16(ch.LegacyVersion))
	}
	if lo == hi {
		return VersionName(uint16(hi))
	}
	return VersionName(uint16(lo)) + "-" + VersionName(uint16(hi))
}

// ticketCell: "-" absent, "ask" empty (asks for a ticket), else its length.
func ticketCell(t SessionTicketFact) string {
	switch {
	case !t.Offered:
		return "-"
	case t.Len == 0:
		return "ask"
	}
	return strconv.Itoa(t.Len)
}

func pskCell(p PSKFact) string {
	if !p.Offered {
		return "-"
	}
	return strconv.Itoa(len(p.Identities))
}

func modesCell(m []int) string {
	if m == nil {
		return "-"
	}
	s := make([]string, len(m))
	for i, v := range m {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func resumedCell(sh *ServerHelloRecord) string {
	switch {
	case sh == nil:
		return "?"
	case sh.HRR:
		return "hrr"
	case !sh.Complete:
		return "?"
	case sh.Resumed && sh.ResumedBy != nil:
		return string(*sh.ResumedBy)
	case sh.Resumed:
		return "yes"
	}
	return "no"
}

// fit shows s through Printable, cut to w runes: every table cell passes
// here, so what a peer or a file put in it cannot act on the terminal, and
// its width is counted as it shows.
func fit(s string, w int) string {
	s = Printable(s)
	if runeLen(s) <= w {
		return s
	}
	rs := []rune(s)
	return string(rs[:w-1]) + "…"
}

func runeLen(s string) int { return len([]rune(s)) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// Explain says in words what a record shows about resumption.
func Explain(r *Record) string {
	ch, sh := r.ClientHello, r.ServerHello
	if ch == nil {
		return "unreadable ClientHello: " + r.Error
	}
	var why []string
	why = append(why, offerWords(ch))
	switch {
	case sh == nil && r.Error != "":
		why = append(why, r.Error)
	case sh == nil:
		why = append(why, "no ServerHello seen")
	case sh.HRR:
		why = append(why, "HelloRetryRequest (group "+GroupName(sh.KeyShareGroup)+"): the next hello retries")
	case !sh.Complete && r.ClientAlert != "":
		why = append(why, "the client ended the handshake with alert "+r.ClientAlert+": resumption unknown")
	case !sh.Complete:
		why = append(why, "server flight cut short: resumption unknown")
		if r.Error != "" {
			why = append(why, r.Error)
		}
	case sh.Resumed:
		why = append(why, "TLS "+VersionName(uint16(sh.Version))+" server resumed ("+resumedCell(sh)+")")
	default:
		why = append(why, "TLS "+VersionName(uint16(sh.Version))+" "+refusalWords(ch, sh))
	}
	if r.EarlyDataSent {
		switch {
		case sh != nil && sh.Complete && !sh.Resumed && !sh.HRR:
			// Early data is protected by the PSK; a full handshake cannot
			// read it (RFC 8446, Section 4.2.10).
			why = append(why, "its 0-RTT data was lost with the PSK")
		default:
			why = append(why, "it sent 0-RTT data (whether the server took it is encrypted)")
		}
	}
	return strings.Join(why, "; ")
}

func offerWords(ch *ClientHelloRecord) string {
	switch ch.Attempt {
	case AttemptPSK:
		return fmt.Sprintf("offered a PSK (%s)", plural(len(ch.PreSharedKey.Identities), "identity", "identities"))
	case AttemptTicket:
		return fmt.Sprintf("offered a %d-byte TLS 1.2 ticket", ch.SessionTicket.Len)
	case AttemptSessionID:
		return "offered a session ID to resume"
	}
	var s string
	switch {
	case ch.SessionTicket.Offered:
		s = "asks for a ticket (empty session_ticket)"
	default:
		s = "offered nothing: no session_ticket, no pre_shared_key"
	}
	switch {
	case ch.SessionIDLen == 32 && containsInt(ch.SupportedVersions, int(VersionTLS13)):
		s += " (its 32-byte session ID is TLS 1.3 compatibility, not an attempt)"
	case ch.SessionIDLen > 0:
		s += " (its session ID was not seen issued earlier: random, or from before this capture or run)"
	}
	return s
}

func refusalWords(ch *ClientHelloRecord, sh *ServerHelloRecord) string {
	issued := ""
	if sh.NewSessionTicket != nil {
		issued = fmt.Sprintf(", issued a %d-byte ticket", sh.NewSessionTicket.Len)
	} else if sh.Version <= int(VersionTLS12) && sh.SessionIDLen > 0 && ch.Attempt == AttemptNone {
		issued = ", issued a session ID"
	}
	switch ch.Attempt {
	case AttemptPSK:
		return "server did not select the PSK: full handshake"
	case AttemptTicket:
		return "server refused the ticket: full handshake" + issued
	case AttemptSessionID:
		return "server did not accept the session ID: full handshake" + issued
	}
	return "full handshake" + issued
}

func containsInt(vs []int, v int) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}
