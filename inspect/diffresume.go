package inspect

import (
	"fmt"
	"slices"
	"strings"
)

// The resumption rows of a Diff: what each set's connections attempted,
// got and brought back. Proxy records know tickets and their lineage
// (client_leg); capture records know only what was in the clear, which for
// TLS 1.3 excludes the tickets.

func rowConns(a, b *diffSet) DiffRow {
	size := func(s *diffSet) string { return share(min(len(s.recs), 2), 2) } // none, one ("some"), many ("all")
	r := row(fmt.Sprint(len(a.recs)), size(a), fmt.Sprint(len(b.recs)), size(b))
	x, y := a, b
	if len(b.recs) < len(a.recs) {
		x, y = b, a
	}
	what := "only one connection"
	if len(x.recs) == 0 {
		what = "no connection"
	}
	r.Meaning = fmt.Sprintf("%s has %s, so it had nothing to resume yet; %s has %d", x.name, what, y.name, len(y.recs))
	return r
}

var attemptOrder = []string{string(AttemptPSK), string(AttemptTicket), string(AttemptSessionID), string(AttemptNone), "unreadable"}

func attemptOf(r *ConnRecord) string {
	if r.ClientHello == nil {
		return "unreadable"
	}
	return string(r.ClientHello.Attempt)
}

func tried(r *ConnRecord) bool {
	a := attemptOf(r)
	return a != string(AttemptNone) && a != "unreadable"
}

// attempts says how the connections tried to resume: "none in 1, psk in 1
// of 2 connections"; n counts the connections of each attempt.
func (s *diffSet) attempts() (text string, n map[string]int) {
	n = map[string]int{}
	if len(s.recs) == 0 {
		return "no connections", n
	}
	for _, r := range s.recs {
		n[attemptOf(r)]++
	}
	var parts []string
	for _, a := range append(slices.Clone(attemptOrder), otherKeys(n, attemptOrder)...) {
		if n[a] > 0 {
			parts = append(parts, fmt.Sprintf("%s in %d", a, n[a]))
		}
	}
	return fmt.Sprintf("%s of %d connections", strings.Join(parts, ", "), len(s.recs)), n
}

func otherKeys(m map[string]int, known []string) []string {
	var out []string
	for k := range m {
		if !slices.Contains(known, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (s *diffSet) countRecs(f func(*ConnRecord) bool) int {
	n := 0
	for _, r := range s.recs {
		if f(r) {
			n++
		}
	}
	return n
}

func rowAttempts(a, b *diffSet) DiffRow {
	ta, na := a.attempts()
	tb, nb := b.attempts()
	r := DiffRow{A: ta, B: tb, Differs: talliesDiffer(na, len(a.recs), nb, len(b.recs))}
	if x, y, ok := lacking(a, b, func(s *diffSet) bool { return s.countRecs(tried) > 0 }); ok {
		r.Meaning = fmt.Sprintf("%s never tried to resume, with no PSK, ticket or issued session ID in any of its %d hellos; %s tried in %d of %d connections", x.name, len(x.hellos), y.name, y.countRecs(tried), len(y.recs))
	} else {
		r.Meaning = fmt.Sprintf("%s and %s tried to resume in different ways: %s, against %s", a.name, b.name, ta, tb)
	}
	return r
}

// clientResumed says whether the client's handshake resumed: against
// tlsresume (client_leg) or, in a capture, against the server, when its
// flight was seen far enough to tell.
func clientResumed(r *ConnRecord) (resumed, known bool) {
	switch sh := r.ServerHello; {
	case r.ClientLeg != nil:
		return r.ClientLeg.Resumed, true
	case sh != nil && sh.Complete && !sh.HRR:
		return sh.Resumed, true
	}
	return false, false
}

// resumed counts the connections whose client handshake resumed, of those
// known; chance counts, among the known, those that had something to
// resume (all but first contacts, by the proxy's verdict) and how many of
// them resumed, which is what two sets are compared by.
func (s *diffSet) resumed() (k, known, chanceK, chance int) {
	for _, r := range s.recs {
		res, ok := clientResumed(r)
		if !ok {
			continue
		}
		known++
		first := r.Verdict.Client.Family() == "first" || (r.Verdict.Client == "" && r.Verdict.Code.Family() == "first")
		if !first {
			chance++
		}
		if res {
			k++
			if !first {
				chanceK++
			}
		}
	}
	return k, known, chanceK, chance
}

func resumedText(k, known, n int) string {
	switch {
	case n == 0:
		return "no connections"
	case known == 0:
		return "unknown"
	case known < n:
		return fmt.Sprintf("%d of %d (%d unknown)", k, known, n-known)
	}
	return fmt.Sprintf("%d of %d", k, n)
}

func rowClientResumed(a, b *diffSet) DiffRow {
	ka, na, ca, cna := a.resumed()
	kb, nb, cb, cnb := b.resumed()
	r := DiffRow{A: resumedText(ka, na, len(a.recs)), B: resumedText(kb, nb, len(b.recs)), Differs: sharesDiffer(ca, cna, cb, cnb)}
	words := func(k, n int) string {
		if k == 0 {
			return fmt.Sprintf("none of its %d handshakes", n)
		}
		return fmt.Sprintf("%d of its %d handshakes", k, n)
	}
	r.Meaning = fmt.Sprintf("%s resumed %s and %s %s", a.name, words(ka, na), b.name, words(kb, nb))
	return r
}

// ticketsSent counts the tickets a set was given: by tlsresume
// (client_leg.tickets_sent), or, in a capture, the TLS 1.2 tickets sent in
// the clear. known is false when some were TLS 1.3 handshakes in a capture,
// whose tickets are encrypted.
func (s *diffSet) ticketsSent() (n int, known bool, text string) {
	proxied, seen12, seen13 := false, false, false
	for _, r := range s.recs {
		switch sh := r.ServerHello; {
		case r.ClientLeg != nil:
			proxied = true
			n += r.ClientLeg.TicketsSent
		case sh == nil || !sh.Complete || sh.HRR:
		case sh.Version >= int(VersionTLS13):
			seen13 = true
		default:
			seen12 = true
			if sh.NewSessionTicket != nil {
				n++
			}
		}
	}
	var parts []string
	if proxied {
		parts = append(parts, fmt.Sprintf("%d by tlsresume", n))
	}
	if seen12 {
		parts = append(parts, plural(n, "TLS 1.2 ticket seen", "TLS 1.2 tickets seen"))
	}
	if seen13 {
		parts = append(parts, "TLS 1.3 ones are encrypted, not seen")
	}
	if len(parts) == 0 {
		return 0, false, "-"
	}
	return n, !seen13, strings.Join(parts, "; ")
}

// whyNoTickets says, from its hellos, why a set was sent no tickets, when
// they tell.
func (s *diffSet) whyNoTickets() string {
	hasModes := some(func(h *ClientHelloRecord) bool { return h.PSKKeyExchangeModes != nil })
	hasTicketExt := some(func(h *ClientHelloRecord) bool { return h.SessionTicket.Offered })
	switch {
	case len(s.hellos) == 0:
	case s.offers13() && !hasModes(s):
		return fmt.Sprintf(" (%s sends no psk_key_exchange_modes, RFC 8446, Section 4.2.9)", s.name)
	case !s.offers13() && !hasTicketExt(s):
		return fmt.Sprintf(" (%s sends no session_ticket extension, RFC 5077, Section 3.2)", s.name)
	}
	for _, r := range s.recs {
		if (r.ClientLeg != nil && r.ClientLeg.Ticket == TicketDisabled) || (r.Mirrored != nil && !r.Mirrored.Tickets) {
			return " (tlsresume issued no tickets: --client-tickets=false, or mirroring an origin that issues none)"
		}
	}
	return ""
}

func rowTicketsSent(a, b *diffSet) DiffRow {
	na, knownA, ta := a.ticketsSent()
	nb, knownB, tb := b.ticketsSent()
	r := DiffRow{A: ta, B: tb, Differs: knownA && knownB && (na == 0) != (nb == 0)}
	x, y, ny := a, b, nb
	if nb == 0 {
		x, y, ny = b, a, na
	}
	issuer := "the server"
	if y.proxied() {
		issuer = "tlsresume"
	}
	r.Meaning = fmt.Sprintf("%s sent %s %s and %s none%s", issuer, y.name, plural(ny, "ticket", "tickets"), x.name, x.whyNoTickets())
	return r
}

// broughtBack counts the connections that offered a ticket: with its
// lineage ("c1 → c2") when tlsresume issued it, with its fate when
// tlsresume could not use it, or, in a capture, any psk or ticket attempt.
func (s *diffSet) broughtBack() (n int, lineage, issuers []string, other int) {
	for _, r := range s.recs {
		switch {
		case r.ClientLeg != nil && r.ClientLeg.TicketFrom != "":
			n++
			lineage = append(lineage, r.ClientLeg.TicketFrom+" → "+r.ID)
			if !slices.Contains(issuers, r.ClientLeg.TicketFrom) {
				issuers = append(issuers, r.ClientLeg.TicketFrom)
			}
		case r.ClientLeg != nil && (r.ClientLeg.Ticket == TicketNotOurs || r.ClientLeg.Ticket == TicketExpired):
			n++
			other++
		case r.ClientLeg == nil && r.ClientHello != nil && (r.ClientHello.Attempt == AttemptPSK || r.ClientHello.Attempt == AttemptTicket):
			n++
		}
	}
	return n, lineage, issuers, other
}

func broughtText(s *diffSet) string {
	n, lineage, _, other := s.broughtBack()
	if len(s.recs) == 0 {
		return "no connections"
	}
	text := fmt.Sprintf("%d of %d", n, len(s.recs))
	switch {
	case len(lineage) > 4:
		text += ": " + strings.Join(lineage[:3], ", ") + fmt.Sprintf(" and %d more", len(lineage)-3)
	case len(lineage) > 0:
		text += ": " + strings.Join(lineage, ", ")
	case n > 0 && !s.proxied():
		text += " (who issued them is not in a capture)"
	}
	if other > 0 {
		text += fmt.Sprintf("; %d not tlsresume's or expired", other)
	}
	return text
}

// broughtClause says what one set did with its tickets.
func broughtClause(s *diffSet) string {
	n, _, issuers, _ := s.broughtBack()
	switch sent, known, _ := s.ticketsSent(); {
	case len(issuers) == 1:
		return fmt.Sprintf("%s brought back the ticket %s issued", s.name, issuers[0])
	case len(issuers) > 1:
		return fmt.Sprintf("%s brought back the tickets %s issued", s.name, andList(issuers))
	case n > 0:
		return fmt.Sprintf("%s offered a ticket or PSK in %d of %d connections", s.name, n, len(s.recs))
	case known && sent > 0 && s.proxied():
		what := "ticket"
		if s.offers13() {
			what = "PSK"
		}
		return fmt.Sprintf("%s offered no %s although tlsresume sent it %s", s.name, what, plural(sent, "ticket", "tickets"))
	case known && sent > 0:
		return fmt.Sprintf("%s offered no ticket although the server sent it %s", s.name, plural(sent, "TLS 1.2 ticket", "TLS 1.2 tickets"))
	case known && s.proxied():
		return fmt.Sprintf("%s brought none back and was sent none", s.name)
	}
	return fmt.Sprintf("%s offered no ticket or PSK in any of its %d hellos", s.name, len(s.hellos))
}

func andList(xs []string) string {
	if len(xs) < 2 {
		return strings.Join(xs, "")
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

func rowBroughtBack(a, b *diffSet) DiffRow {
	na, _, _, _ := a.broughtBack()
	nb, _, _, _ := b.broughtBack()
	r := DiffRow{A: broughtText(a), B: broughtText(b), Differs: sharesDiffer(na, len(a.recs), nb, len(b.recs))}
	first, second := a, b
	if na == 0 && nb > 0 {
		first, second = b, a
	}
	r.Meaning = broughtClause(first) + "; " + broughtClause(second)
	return r
}

// ticketAge is the median age of the tickets of tlsresume's a set brought
// back, in milliseconds; ok is false when it brought none.
func (s *diffSet) ticketAge() (ms int64, ok bool) {
	var ages []int64
	for _, r := range s.recs {
		if r.ClientLeg != nil && r.ClientLeg.TicketFrom != "" {
			ages = append(ages, r.ClientLeg.TicketAgeMS)
		}
	}
	if len(ages) == 0 {
		return 0, false
	}
	slices.Sort(ages)
	return ages[len(ages)/2], true
}

// durationWords renders milliseconds for people: "850 ms", "4.2 s",
// "12 min", "3.5 h", "2 days".
func durationWords(ms int64) string {
	s := float64(ms) / 1000
	switch {
	case ms < 1000:
		return fmt.Sprintf("%d ms", ms)
	case s < 60:
		return fmt.Sprintf("%.1f s", s)
	case s < 3600:
		return fmt.Sprintf("%.0f min", s/60)
	case s < 48*3600:
		return fmt.Sprintf("%.1f h", s/3600)
	}
	return fmt.Sprintf("%.0f days", s/86400)
}

func rowTicketAge(a, b *diffSet) DiffRow {
	text := func(s *diffSet) (string, string) {
		if ms, ok := s.ticketAge(); ok {
			return "median " + durationWords(ms), "known"
		}
		return "-", ""
	}
	ta, ka := text(a)
	tb, kb := text(b)
	r := row(ta, ka, tb, kb)
	y := a
	if ka == "" {
		y = b
	}
	ms, _ := y.ticketAge()
	r.Meaning = fmt.Sprintf("only %s brought back a ticket tlsresume issued, a median %s after it was issued", y.name, durationWords(ms))
	return r
}

// upstream counts tlsresume's upstream handshakes and how many resumed,
// and the same of those that had something to resume (not first
// contacts), which two sets are compared by.
func (s *diffSet) upstream() (text string, k, n, chanceK, chance int) {
	for _, r := range s.recs {
		if r.UpstreamLeg == nil {
			continue
		}
		n++
		first := r.Verdict.Upstream.Family() == "first"
		if !first {
			chance++
		}
		if r.UpstreamLeg.Resumed {
			k++
			if !first {
				chanceK++
			}
		}
	}
	if n == 0 {
		return "-", 0, 0, 0, 0
	}
	return fmt.Sprintf("%d of %d", k, n), k, n, chanceK, chance
}

func rowUpstream(a, b *diffSet) DiffRow {
	ta, kA, nA, cA, chA := a.upstream()
	tb, kB, nB, cB, chB := b.upstream()
	r := DiffRow{A: ta, B: tb, Differs: (nA == 0) != (nB == 0) || (nA > 0 && sharesDiffer(cA, chA, cB, chB))}
	switch {
	case nA == 0 || nB == 0:
		y := a
		if nA == 0 {
			y = b
		}
		r.Meaning = fmt.Sprintf("only %s's connections went through tlsresume to an origin", y.name)
	default:
		r.Meaning = fmt.Sprintf("tlsresume's own handshakes with the origin resumed %d of %d for %s and %d of %d for %s: that leg depends on the origin and tlsresume's session cache, not on the client", kA, nA, a.name, kB, nB, b.name)
	}
	return r
}

// topCode is a set's commonest verdict code, first contacts aside unless
// there is nothing else (they say only that there was nothing to resume
// yet); ties go to the first seen.
func (s *diffSet) topCode() (code VerdictCode, k int) {
	n := map[VerdictCode]int{}
	var order []VerdictCode
	for _, r := range s.recs {
		if c := r.Verdict.Code; c != "" {
			if n[c] == 0 {
				order = append(order, c)
			}
			n[c]++
		}
	}
	for _, firstToo := range []bool{false, true} {
		for _, c := range order {
			if (firstToo || c.Family() != "first") && n[c] > k {
				code, k = c, n[c]
			}
		}
		if code != "" {
			break
		}
	}
	return code, k
}

func rowVerdict(a, b *diffSet) DiffRow {
	text := func(s *diffSet) string {
		if c, k := s.topCode(); c != "" {
			return fmt.Sprintf("%s (%d of %d)", c, k, len(s.recs))
		}
		return "-"
	}
	ca, _ := a.topCode()
	cb, _ := b.topCode()
	r := row(text(a), string(ca), text(b), string(cb))
	var parts []string
	for _, s := range []*diffSet{a, b} {
		switch c, _ := s.topCode(); {
		case c == "":
			parts = append(parts, s.name+" has no verdicts (a capture's records carry none)")
		case c.Family() == "resumed":
			parts = append(parts, fmt.Sprintf("%s's commonest verdict is %s", s.name, c))
		default:
			parts = append(parts, fmt.Sprintf("%s's commonest verdict is %s: %s", s.name, c, shortMeaning(c.Meaning())))
		}
	}
	r.Meaning = strings.Join(parts, "; ")
	return r
}

// shortMeaning is a code's meaning up to its first ":" or ";" outside
// parentheses, without the backquotes README's table uses.
func shortMeaning(s string) string {
	depth := 0
	for i, c := range s {
		switch {
		case c == '(':
			depth++
		case c == ')':
			depth = max(depth-1, 0)
		case depth == 0 && (c == ':' || c == ';'):
			s = s[:i]
			return strings.ReplaceAll(s, "`", "")
		}
	}
	return strings.ReplaceAll(s, "`", "")
}
