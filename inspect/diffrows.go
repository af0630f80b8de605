package inspect

import (
	"fmt"
	"slices"
	"strings"
)

// diffFields lists a Diff's rows in order: what happened first (attempts,
// tickets, resumptions, verdicts), then what the hellos offered, the
// fields that decide resumption before those that only change the
// fingerprint. Each row function summarizes one field over both sets and,
// when they differ, says why it matters. Sentences say only what the
// records show; where a rule of the protocol shapes one, the comment or
// the sentence cites it. A fingerprint row has a brief, the few words its
// folded line shows (WriteDiff).
var diffFields = []struct {
	section, field string
	row            func(a, b *diffSet) DiffRow
	brief          func(s *diffSet, full string) string // fingerprint rows only
}{
	{DiffResumption, "connections", rowConns, nil},
	{DiffResumption, "attempts", rowAttempts, nil},
	{DiffResumption, "client_resumed", rowClientResumed, nil},
	{DiffResumption, "tickets_sent", rowTicketsSent, nil},
	{DiffResumption, "tickets_brought_back", rowBroughtBack, nil},
	{DiffResumption, "ticket_age", rowTicketAge, nil},
	{DiffResumption, "upstream_resumed", rowUpstream, nil},
	{DiffResumption, "verdict", rowVerdict, nil},
	{DiffHello, "transport", rowTransport, nil},
	{DiffHello, "versions", rowVersions, nil},
	{DiffHello, "session_ticket", rowSessionTicket, nil},
	{DiffHello, "pre_shared_key", rowPSK, nil},
	{DiffHello, "psk_key_exchange_modes", rowPSKModes, nil},
	{DiffHello, "early_data", rowEarlyData, nil},
	{DiffHello, "session_id_len", rowSessionID, nil},
	{DiffHello, "extended_master_secret", rowEMS, nil},
	{DiffHello, "alpn", rowALPN, nil},
	{DiffHello, "supported_groups", rowGroups, briefList(func(h *ClientHelloRecord) []string { return groupNameList(h.SupportedGroups) })},
	{DiffHello, "extensions", rowExtensions, briefList(extensionList)},
	{DiffHello, "cipher_suites", rowCipherSuites, briefValue(func(h *ClientHelloRecord) string { return fmt.Sprint(h.CipherSuites) })},
	{DiffHello, "ja4", rowJA4, briefValue(func(h *ClientHelloRecord) string { return h.JA4 })},
	{DiffHello, "ja3_hash", rowJA3, briefValue(func(h *ClientHelloRecord) string { return h.JA3Hash })},
}

// briefValue folds a fingerprint to one line: the row's text when it fits
// one, else how many distinct values the set's hellos sent ("27 distinct
// in 27 hellos").
func briefValue(value func(*ClientHelloRecord) string) func(*diffSet, string) string {
	return func(s *diffSet, full string) string {
		if runeLen(full) <= diffValueWidth {
			return full
		}
		seen := map[string]bool{}
		for _, h := range s.hellos {
			seen[value(h)] = true
		}
		return fmt.Sprintf("%d distinct in %d hellos", len(seen), len(s.hellos))
	}
}

// briefList folds a list of a hello, GREASE values named GREASE: the
// row's text when it fits one line, else "one list of 13" or "27 distinct
// lists in 27 hellos".
func briefList(list func(*ClientHelloRecord) []string) func(*diffSet, string) string {
	return func(s *diffSet, full string) string {
		if runeLen(full) <= diffValueWidth {
			return full
		}
		seen := map[string]bool{}
		for _, h := range s.hellos {
			seen[strings.Join(list(h), ",")] = true
		}
		if len(seen) == 1 {
			return fmt.Sprintf("one list of %d", len(list(s.hellos[0])))
		}
		return fmt.Sprintf("%d distinct lists in %d hellos", len(seen), len(s.hellos))
	}
}

// row builds a DiffRow from each side's text and key: the sides differ
// when their keys do.
func row(ta, ka, tb, kb string) DiffRow {
	return DiffRow{A: ta, B: tb, Differs: ka != kb}
}

// lacking returns the side for which has is false and the side for which
// it is true, when exactly one side has it; both sides must have hellos.
func lacking(a, b *diffSet, has func(*diffSet) bool) (x, y *diffSet, ok bool) {
	if len(a.hellos) == 0 || len(b.hellos) == 0 {
		return nil, nil, false
	}
	switch ha, hb := has(a), has(b); {
	case !ha && hb:
		return a, b, true
	case ha && !hb:
		return b, a, true
	}
	return nil, nil, false
}

// some turns a hello predicate into "some hello of the set satisfies it".
func some(f func(*ClientHelloRecord) bool) func(*diffSet) bool {
	return func(s *diffSet) bool { return s.count(f) > 0 }
}

// transportText: "tcp", "quic", or "quic in 2, tcp in 1 of 3 connections".
func transportText(s *diffSet) (text, key string) {
	counts := map[string]int{}
	for _, r := range s.recs {
		counts[r.TransportName()]++
	}
	switch {
	case len(counts) == 0:
		return "no connections", ""
	case len(counts) == 1:
		for t := range counts {
			return t, t
		}
	}
	return fmt.Sprintf("quic in %d, tcp in %d of %d connections", counts[TransportNameQUIC], counts[TransportNameTCP], len(s.recs)), "both"
}

func rowTransport(a, b *diffSet) DiffRow {
	ta, ka := transportText(a)
	tb, kb := transportText(b)
	r := row(ta, ka, tb, kb)
	// RFC 9001, Section 4.2: QUIC clients offer no TLS version below 1.3.
	r.Meaning = fmt.Sprintf("%s and %s reach their hosts over different transports: a hello in QUIC Initial packets (HTTP/3) is TLS 1.3 only (RFC 9001, Section 4.2), so it resumes only by a PSK, and the rows below compare the same fields on each transport", a.name, b.name)
	return r
}

func rowVersions(a, b *diffSet) DiffRow {
	ta, ka := a.spread(versionList)
	tb, kb := b.spread(versionList)
	r := row(ta, ka, tb, kb)
	if x, y, ok := lacking(a, b, (*diffSet).offers13); ok {
		r.Meaning = fmt.Sprintf("%s offers no TLS 1.3: it can resume only by a TLS 1.2 ticket (RFC 5077) or a session ID, never by a PSK, while %s offers TLS 1.3", x.name, y.name)
	} else {
		// crypto/tls resumes a session only at its own version
		// (handshake_server.go and handshake_server_tls13.go, checkForResumption).
		r.Meaning = fmt.Sprintf("%s and %s offer different TLS versions: a session resumes only at the version it was made with", a.name, b.name)
	}
	return r
}

var ticketCategories = []string{"absent", "asks", "carries a ticket"}

func rowSessionTicket(a, b *diffSet) DiffRow {
	ta, na := a.tally(ticketCategories, ticketCategory)
	tb, nb := b.tally(ticketCategories, ticketCategory)
	r := DiffRow{A: ta, B: tb, Differs: talliesDiffer(na, len(a.hellos), nb, len(b.hellos))}
	carries := func(h *ClientHelloRecord) bool { return h.SessionTicket.Len > 0 }
	// RFC 5077, Section 3.2: a server sends a ticket only to a client whose
	// ClientHello has the extension; TLS 1.3 replaced it (RFC 8446, 4.6.1).
	if x, y, ok := lacking(a, b, some(func(h *ClientHelloRecord) bool { return h.SessionTicket.Offered })); ok {
		if x.offers13() {
			r.Meaning = fmt.Sprintf("%s sends no session_ticket extension: over TLS 1.3 that costs nothing, as tickets come in NewSessionTicket messages (RFC 8446, Section 4.6.1), but a TLS 1.2 server gives it no ticket (RFC 5077, Section 3.2); %s sends one", x.name, y.name)
		} else {
			r.Meaning = fmt.Sprintf("%s sends no session_ticket extension: over TLS 1.2 no server gives it a ticket (RFC 5077, Section 3.2), so it can resume only by session ID; %s sends one", x.name, y.name)
		}
	} else if x, y, ok := lacking(a, b, some(carries)); ok {
		r.Meaning = fmt.Sprintf("%s carries a TLS 1.2 ticket in %d of %d hellos, an attempt to resume (RFC 5077, Section 3.2); %s never does", y.name, y.count(carries), len(y.hellos), x.name)
	} else {
		r.Meaning = fmt.Sprintf("%s and %s ask for or carry TLS 1.2 tickets in a different share of their hellos (RFC 5077, Section 3.2)", a.name, b.name)
	}
	return r
}

func pskOffered(h *ClientHelloRecord) bool { return h.PreSharedKey.Offered }

func pskText(s *diffSet) (text string, k int) {
	text, k = s.inHellos(pskOffered)
	lo, hi := -1, 0
	for _, h := range s.hellos {
		if h.PreSharedKey.Offered {
			n := len(h.PreSharedKey.Identities)
			if lo < 0 || n < lo {
				lo = n
			}
			hi = max(hi, n)
		}
	}
	switch {
	case lo < 0:
	case lo == hi:
		text += " (" + plural(lo, "identity", "identities") + ")"
	default:
		text += fmt.Sprintf(" (%d-%d identities)", lo, hi)
	}
	return text, k
}

// rowShares builds a row of two counts over each set's hellos.
func rowShares(ta string, ka int, a *diffSet, tb string, kb int, b *diffSet) DiffRow {
	return DiffRow{A: ta, B: tb, Differs: sharesDiffer(ka, len(a.hellos), kb, len(b.hellos))}
}

func rowPSK(a, b *diffSet) DiffRow {
	ta, ka := pskText(a)
	tb, kb := pskText(b)
	r := rowShares(ta, ka, a, tb, kb, b)
	if x, y, ok := lacking(a, b, some(pskOffered)); ok {
		r.Meaning = fmt.Sprintf("%s never offers a pre_shared_key, so it never tries TLS 1.3 resumption; %s offers one in %d of %d hellos", x.name, y.name, y.count(pskOffered), len(y.hellos))
	} else {
		r.Meaning = fmt.Sprintf("%s offers a pre_shared_key in %d of %d hellos and %s in %d of %d", a.name, a.count(pskOffered), len(a.hellos), b.name, b.count(pskOffered), len(b.hellos))
	}
	return r
}

func rowPSKModes(a, b *diffSet) DiffRow {
	ta, ka := a.spread(pskModeNames)
	tb, kb := b.spread(pskModeNames)
	r := row(ta, ka, tb, kb)
	hasModes := some(func(h *ClientHelloRecord) bool { return h.PSKKeyExchangeModes != nil })
	hasDHE := some(func(h *ClientHelloRecord) bool { return slices.Contains(h.PSKKeyExchangeModes, 1) })
	// RFC 8446, Section 4.2.9: servers should not send tickets the client's
	// modes rule out; crypto/tls sends them only with psk_dhe_ke
	// (handshake_server_tls13.go, shouldSendSessionTickets).
	if x, y, ok := lacking(a, b, hasModes); ok && x.offers13() {
		r.Meaning = fmt.Sprintf("%s sends no psk_key_exchange_modes: a TLS 1.3 server sends it no tickets (RFC 8446, Section 4.2.9), so it cannot resume over TLS 1.3; %s sends them", x.name, y.name)
	} else if ok {
		r.Meaning = fmt.Sprintf("%s sends no psk_key_exchange_modes, which only TLS 1.3 uses, and it offers no TLS 1.3", x.name)
	} else if x, _, ok := lacking(a, b, hasDHE); ok && hasModes(x) {
		r.Meaning = fmt.Sprintf("%s allows only psk_ke: servers that resume only with (EC)DHE, as crypto/tls does, send it no tickets (RFC 8446, Section 4.2.9)", x.name)
	} else {
		r.Meaning = fmt.Sprintf("%s and %s allow different PSK key exchange modes (RFC 8446, Section 4.2.9)", a.name, b.name)
	}
	return r
}

func rowEarlyData(a, b *diffSet) DiffRow {
	early := func(h *ClientHelloRecord) bool { return h.EarlyData }
	ta, ka := a.inHellos(early)
	tb, kb := b.inHellos(early)
	r := rowShares(ta, ka, a, tb, kb, b)
	if x, y, ok := lacking(a, b, some(early)); ok {
		r.Meaning = fmt.Sprintf("%s offers early_data (0-RTT) in %d of %d hellos, sending application data with a resumed PSK before the handshake completes (RFC 8446, Section 4.2.10); %s never does", y.name, y.count(early), len(y.hellos), x.name)
	} else {
		r.Meaning = fmt.Sprintf("%s and %s offer early_data (0-RTT) in a different share of their hellos (RFC 8446, Section 4.2.10)", a.name, b.name)
	}
	return r
}

func rowSessionID(a, b *diffSet) DiffRow {
	f := func(h *ClientHelloRecord) string { return fmt.Sprintf("%d bytes", h.SessionIDLen) }
	ta, ka := a.spread(f)
	tb, kb := b.spread(f)
	r := row(ta, ka, tb, kb)
	r.Meaning = fmt.Sprintf("%s and %s send legacy session IDs of different lengths: a 32-byte one is TLS 1.3 middlebox compatibility (RFC 8446, Appendix D.4) unless the server issued it, which the attempts row counts as session_id", a.name, b.name)
	return r
}

func rowALPN(a, b *diffSet) DiffRow {
	f := func(h *ClientHelloRecord) string {
		if len(h.ALPN) == 0 {
			return "none"
		}
		return strings.Join(h.ALPN, ", ")
	}
	ta, ka := a.spread(f)
	tb, kb := b.spread(f)
	r := row(ta, ka, tb, kb)
	r.Meaning = fmt.Sprintf("%s and %s offer different ALPN protocols: that does not decide resumption, though 0-RTT needs the same protocol again (RFC 8446, Section 4.2.10)", a.name, b.name)
	return r
}

func rowGroups(a, b *diffSet) DiffRow {
	f := func(h *ClientHelloRecord) string { return groupNames(h.SupportedGroups) }
	ta, ka := a.spread(f)
	tb, kb := b.spread(f)
	r := row(ta, ka, tb, kb)
	r.Meaning = fmt.Sprintf("%s and %s offer different key exchange groups: that changes the key exchange and the fingerprint, not whether a session can resume", a.name, b.name)
	return r
}

// extensionsText lists the extensions in wire order. When a set's hellos
// send different lists, the first list is shown with how many hellos sent
// it, and each other list as what it adds and drops ("+pre_shared_key (1
// of 2)"), or whole when its order differs. A set whose hellos send more
// than three lists (a client that shuffles them) shows its first list and
// how many others there were. byNames makes key the names used, order and
// GREASE aside, for comparing with a set that shuffles.
func extensionsText(s *diffSet, byNames bool) (text, key string) {
	if len(s.hellos) == 0 {
		return "no hellos", ""
	}
	if byNames {
		names := minus(extensionUnion(s), []string{"GREASE"})
		slices.Sort(names)
		key = strings.Join(names, ",")
	}
	if n := distinctLists(s); n > 3 {
		text = strings.Join(extensionList(s.hellos[0]), ", ")
		return text + fmt.Sprintf("; and %d other orders or lists", n-1), key
	}
	var lists [][]string
	n := map[string]int{}
	for _, h := range s.hellos {
		l := extensionList(h)
		k := strings.Join(l, ", ")
		if n[k] == 0 {
			lists = append(lists, l)
		}
		n[k]++
	}
	base := strings.Join(lists[0], ", ")
	if len(lists) == 1 {
		if !byNames {
			key = base
		}
		return base, key
	}
	parts := []string{fmt.Sprintf("%s (%d of %d)", base, n[base], len(s.hellos))}
	keys := []string{base}
	for _, l := range lists[1:] {
		k := strings.Join(l, ", ")
		keys = append(keys, k)
		parts = append(parts, fmt.Sprintf("%s (%d of %d)", listChange(lists[0], l), n[k], len(s.hellos)))
	}
	if !byNames {
		slices.Sort(keys)
		key = strings.Join(keys, "\x00")
	}
	return strings.Join(parts, "; "), key
}

// listChange says how list v differs from base: "+pre_shared_key" for what
// it adds, "-padding" for what it drops, when the rest keeps its order;
// else v whole.
func listChange(base, v []string) string {
	added, dropped := minus(v, base), minus(base, v)
	if !slices.Equal(minus(v, added), minus(base, dropped)) {
		return strings.Join(v, ", ")
	}
	var parts []string
	for _, a := range added {
		parts = append(parts, "+"+a)
	}
	for _, d := range dropped {
		parts = append(parts, "-"+d)
	}
	return strings.Join(parts, ", ")
}

func distinctLists(s *diffSet) int {
	seen := map[string]bool{}
	for _, h := range s.hellos {
		seen[strings.Join(extensionList(h), ",")] = true
	}
	return len(seen)
}

// extensionUnion names every extension some hello of s sends, in order of
// first appearance.
func extensionUnion(s *diffSet) []string {
	var out []string
	for _, h := range s.hellos {
		for _, n := range extensionList(h) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func rowExtensions(a, b *diffSet) DiffRow {
	// A side that shuffles its extensions (more than three lists) is
	// compared with the other by the names both use, not by their order.
	byNames := distinctLists(a) > 3 || distinctLists(b) > 3
	ta, ka := extensionsText(a, byNames)
	tb, kb := extensionsText(b, byNames)
	r := row(ta, ka, tb, kb)
	// GREASE values (RFC 8701) differ from hello to hello by design.
	ua, ub := minus(extensionUnion(a), []string{"GREASE"}), minus(extensionUnion(b), []string{"GREASE"})
	var parts []string
	if only := minus(ua, ub); len(only) > 0 {
		parts = append(parts, fmt.Sprintf("only %s sends %s", a.name, strings.Join(only, ", ")))
	}
	if only := minus(ub, ua); len(only) > 0 {
		parts = append(parts, fmt.Sprintf("only %s sends %s", b.name, strings.Join(only, ", ")))
	}
	var matter []string
	for _, n := range append(minus(ua, ub), minus(ub, ua)...) {
		if slices.Contains(resumptionExtensions, n) {
			matter = append(matter, n)
		}
	}
	switch {
	case len(parts) > 0 && len(matter) > 0:
		r.Meaning = strings.Join(parts, "; ") + " (" + strings.Join(matter, ", ") + ": see their rows)"
	case len(parts) > 0:
		r.Meaning = strings.Join(parts, "; ") + ": none of these decides resumption"
	case nameSets(a) == nameSets(b):
		r.Meaning = fmt.Sprintf("%s and %s send the same extensions in another order: JA3 changes, JA4 (which sorts them) does not, and resumption does not care", a.name, b.name)
	default:
		r.Meaning = fmt.Sprintf("%s and %s send the same extensions, but not in the same hellos", a.name, b.name)
	}
	return r
}

// resumptionExtensions have rows of their own.
var resumptionExtensions = []string{"session_ticket", "pre_shared_key", "psk_key_exchange_modes", "early_data", "extended_master_secret"}

func minus(xs, ys []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(ys, x) {
			out = append(out, x)
		}
	}
	return out
}

// nameSets is the set of per-hello extension sets, order ignored.
func nameSets(s *diffSet) string {
	var sets []string
	for _, h := range s.hellos {
		names := extensionList(h)
		slices.Sort(names)
		if set := strings.Join(names, ","); !slices.Contains(sets, set) {
			sets = append(sets, set)
		}
	}
	slices.Sort(sets)
	return strings.Join(sets, "\x00")
}

func rowCipherSuites(a, b *diffSet) DiffRow {
	nonGREASE := func(h *ClientHelloRecord) []int {
		return slices.DeleteFunc(slices.Clone(h.CipherSuites), func(c int) bool { return IsGREASE(uint16(c)) })
	}
	count := func(h *ClientHelloRecord) string { return fmt.Sprint(len(nonGREASE(h))) }
	list := func(h *ClientHelloRecord) string { return fmt.Sprint(nonGREASE(h)) }
	ta, _ := a.spread(count)
	tb, _ := b.spread(count)
	_, ka := a.spread(list)
	_, kb := b.spread(list)
	r := row(ta, ka, tb, kb)
	// RFC 8446, Section 4.2.11: a PSK is used with a suite of its hash; RFC
	// 5246, Section 7.4.1.2: a resumed TLS 1.2 session keeps its suite.
	r.Meaning = fmt.Sprintf("%s and %s offer different cipher suites (%s and %s): that changes the fingerprint; resuming needs only the session's suite (TLS 1.2) or its hash (TLS 1.3, RFC 8446, Section 4.2.11) offered again", a.name, b.name, ta, tb)
	return r
}

func rowEMS(a, b *diffSet) DiffRow {
	ems := func(h *ClientHelloRecord) bool { return h.ExtendedMasterSecret }
	ta, ka := a.inHellos(ems)
	tb, kb := b.inHellos(ems)
	r := rowShares(ta, ka, a, tb, kb, b)
	r.Meaning = fmt.Sprintf("%s sends extended_master_secret %s and %s %s: over TLS 1.2 a session resumes only when both handshakes agree on it (RFC 7627, Section 5.3)", a.name, ta, b.name, tb)
	return r
}

func rowJA4(a, b *diffSet) DiffRow {
	f := func(h *ClientHelloRecord) string { return h.JA4 }
	ta, ka := a.spread(f)
	tb, kb := b.spread(f)
	r := row(ta, ka, tb, kb)
	r.Meaning = fmt.Sprintf("%s and %s send different ClientHellos (another TLS stack, other settings, or a resuming hello's pre_shared_key); the rows above say where", a.name, b.name)
	return r
}

func rowJA3(a, b *diffSet) DiffRow {
	f := func(h *ClientHelloRecord) string { return h.JA3Hash }
	ta, ka := a.spread(f)
	tb, kb := b.spread(f)
	r := row(ta, ka, tb, kb)
	r.Meaning = fmt.Sprintf("%s and %s have different JA3 hashes: other cipher suites, extensions, groups or extension order", a.name, b.name)
	return r
}
