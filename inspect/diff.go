package inspect

import (
	"fmt"
	"slices"
	"strings"
)

// Diff compares two sets of records (two programs, two hosts, or two single
// connections): their ClientHellos field by field, then how they resumed.
// It is the answer of `tlsresume diff --format json` and of the web view's
// diff API, so its JSON shape is a contract: fields may be added, rows may
// be added, a row's field name keeps its meaning.
type Diff struct {
	A    DiffSide  `json:"a"`
	B    DiffSide  `json:"b"`
	Rows []DiffRow `json:"rows"` // resumption rows first, then hello rows, fingerprint rows last
}

// DiffSide describes one of the two sets.
type DiffSide struct {
	Name     string   `json:"name"`               // how sentences name the set: "A", "URLSession"
	Selector string   `json:"selector,omitempty"` // the selector that chose it, when one did
	Conns    int      `json:"conns"`              // connections (a HelloRetryRequest's first hello is not one)
	Hellos   int      `json:"hellos"`             // of which had a readable ClientHello
	Programs []string `json:"programs"`           // Program of each, in order of first appearance
	Hosts    []string `json:"hosts"`              // HostOf each: SNI, else target, else server address; the port unless 443
	// LikelyPrograms are the programs the hellos' JA4s likely come from,
	// by the JA4 table ("likely Safari/URLSession (JA4 table)"), in order
	// of first appearance; a likely match, never a fact.
	LikelyPrograms []string `json:"likely_programs,omitempty"`

	byJA4 bool // some program is named by its JA4, not by a User-Agent
}

// DiffRow is one field of both sets. A and B summarize the field over each
// set's hellos or connections ("asks in 3 of 3 hellos"). Differs says the
// two sets behave differently in it, not merely that their counts differ
// (2 of 2 and 3 of 3 do not differ); Meaning, only when they do, says in one
// sentence what that means for resumption, naming the sets by their names.
type DiffRow struct {
	Section string `json:"section"` // DiffHello or DiffResumption
	Field   string `json:"field"`   // e.g. "session_ticket", "tickets_brought_back"
	A       string `json:"a"`
	B       string `json:"b"`
	Differs bool   `json:"differs"`
	Meaning string `json:"meaning,omitempty"`
	// Fingerprint marks the rows that shape the fingerprint and not
	// resumption (supported_groups, extensions, cipher_suites, ja4,
	// ja3_hash), whose values can fill a screen; ABrief and BBrief fold
	// each side to one line for them: A or B when it fits one, else a
	// count ("27 distinct in 27 hellos", "one list of 16"). WriteDiff
	// shows the briefs, WriteDiffAll every value.
	Fingerprint bool   `json:"fingerprint,omitempty"`
	ABrief      string `json:"a_brief,omitempty"`
	BBrief      string `json:"b_brief,omitempty"`
}

// The sections of a Diff's rows.
const (
	DiffHello      = "hello"      // what the ClientHellos offered
	DiffResumption = "resumption" // what happened: attempts, tickets, resumptions, verdicts
)

// NoMatchError says that a selector given to CompareSelected picked no
// record: there is nothing to compare.
type NoMatchError struct {
	Side     string // "a" or "b"
	Selector string
}

func (e *NoMatchError) Error() string {
	return fmt.Sprintf("inspect: no record matches %s's selector %q", e.Side, e.Selector)
}

// CompareSelected compares the records a selects with those b selects,
// naming the sets "A" and "B". It returns a *NoMatchError when either
// selects nothing.
func CompareSelected(recs []*ConnRecord, a, b Selector) (*Diff, error) {
	setA, setB := Select(recs, a), Select(recs, b)
	switch {
	case len(setA) == 0:
		return nil, &NoMatchError{Side: "a", Selector: a.String()}
	case len(setB) == 0:
		return nil, &NoMatchError{Side: "b", Selector: b.String()}
	}
	d := Compare(setA, setB, "A", "B")
	d.A.Selector, d.B.Selector = a.String(), b.String()
	return d, nil
}

// Compare compares two sets of records, in the order given (time order),
// naming them nameA and nameB in its sentences. Both sets should hold at
// least one record (CompareSelected checks): an empty set compares, as
// "no hellos", but says nothing useful.
func Compare(a, b []*ConnRecord, nameA, nameB string) *Diff {
	sa, sb := newDiffSet(a, nameA), newDiffSet(b, nameB)
	d := &Diff{A: sa.side(), B: sb.side()}
	for _, f := range diffFields {
		row := f.row(sa, sb)
		row.Section, row.Field = f.section, f.field
		if !row.Differs {
			row.Meaning = ""
		}
		if f.brief != nil {
			row.Fingerprint, row.ABrief, row.BBrief = true, f.brief(sa, row.A), f.brief(sb, row.B)
		}
		d.Rows = append(d.Rows, row)
	}
	return d
}

// diffSet is one side of a comparison: its connections, and the readable
// hellos among them.
type diffSet struct {
	name   string
	recs   []*ConnRecord
	hellos []*ClientHelloRecord
}

func newDiffSet(recs []*ConnRecord, name string) *diffSet {
	s := &diffSet{name: name}
	for _, r := range recs {
		if r.ServerHello != nil && r.ServerHello.HRR {
			continue // the retried hello that follows is the one that counts
		}
		s.recs = append(s.recs, r)
		if r.ClientHello != nil {
			s.hellos = append(s.hellos, r.ClientHello)
		}
	}
	return s
}

func (s *diffSet) side() DiffSide {
	d := DiffSide{Name: s.name, Conns: len(s.recs), Hellos: len(s.hellos), Programs: []string{}, Hosts: []string{}}
	for _, r := range s.recs {
		if p := Program(r); !slices.Contains(d.Programs, p) {
			d.Programs = append(d.Programs, p)
		}
		if h := HostOf(r); !slices.Contains(d.Hosts, h) {
			d.Hosts = append(d.Hosts, h)
		}
		if r.ClientHello == nil {
			continue
		}
		d.byJA4 = d.byJA4 || ProgramName(r.UserAgent) == ""
		if p := LikelyProgram(r.ClientHello.JA4); p != "" && !slices.Contains(d.LikelyPrograms, p) {
			d.LikelyPrograms = append(d.LikelyPrograms, p)
		}
	}
	return d
}

// count returns how many hellos satisfy f.
func (s *diffSet) count(f func(*ClientHelloRecord) bool) int {
	n := 0
	for _, h := range s.hellos {
		if f(h) {
			n++
		}
	}
	return n
}

// offers13 reports whether any hello offers TLS 1.3.
func (s *diffSet) offers13() bool {
	return s.count(func(h *ClientHelloRecord) bool { return MaxVersion(h) >= int(VersionTLS13) }) > 0
}

// proxied reports whether any record went through the proxy (has a
// client leg): tickets and their lineage are then known.
func (s *diffSet) proxied() bool {
	for _, r := range s.recs {
		if r.ClientLeg != nil {
			return true
		}
	}
	return false
}

// spread summarizes one value per hello: the value itself when every hello
// agrees, else each value with how many hellos had it. key is the set of
// values, for deciding whether two sets differ.
func (s *diffSet) spread(f func(*ClientHelloRecord) string) (text, key string) {
	if len(s.hellos) == 0 {
		return "no hellos", ""
	}
	var order []string
	n := map[string]int{}
	for _, h := range s.hellos {
		v := f(h)
		if n[v] == 0 {
			order = append(order, v)
		}
		n[v]++
	}
	if len(order) == 1 {
		return order[0], order[0]
	}
	parts := make([]string, len(order))
	for i, v := range order {
		parts[i] = fmt.Sprintf("%s (%d of %d)", v, n[v], len(s.hellos))
	}
	keys := slices.Clone(order)
	slices.Sort(keys)
	return strings.Join(parts, "; "), strings.Join(keys, "\x00")
}

// tally summarizes a category per hello: "asks in 3 of 3 hellos",
// "absent in 1, asks in 2 of 3 hellos". cats lists the categories in the
// order to print them; n counts the hellos of each.
func (s *diffSet) tally(cats []string, f func(*ClientHelloRecord) string) (text string, n map[string]int) {
	n = map[string]int{}
	if len(s.hellos) == 0 {
		return "no hellos", n
	}
	for _, h := range s.hellos {
		n[f(h)]++
	}
	var parts []string
	for _, c := range cats {
		if n[c] > 0 {
			parts = append(parts, fmt.Sprintf("%s in %d", c, n[c]))
		}
	}
	return fmt.Sprintf("%s of %d hellos", strings.Join(parts, ", "), len(s.hellos)), n
}

// inHellos says in how many hellos f holds: "in 2 of 3 hellos", "in none
// of 3 hellos"; k is how many.
func (s *diffSet) inHellos(f func(*ClientHelloRecord) bool) (text string, k int) {
	if len(s.hellos) == 0 {
		return "no hellos", 0
	}
	k = s.count(f)
	return fmt.Sprintf("in %s of %d hellos", countWord(k), len(s.hellos)), k
}

// share is "all", "some" or "none" of n (and "" for nothing to count).
func share(k, n int) string {
	switch {
	case n == 0:
		return ""
	case k == 0:
		return "none"
	case k == n:
		return "all"
	}
	return "some"
}

// sharesDiffer says whether k of n and l of m differ as behaviour, not
// merely as counts: in kind (all, some, none), or, both some, by 10
// points or more (1 of 5 and 15 of 27 differ; 2 of 2 and 3 of 3 do not,
// nor 14 of 26 and 15 of 27).
func sharesDiffer(k, n, l, m int) bool {
	if a, b := share(k, n), share(l, m); a != b || a != "some" {
		return a != b
	}
	d := float64(k)/float64(n) - float64(l)/float64(m)
	return d >= 0.1 || d <= -0.1
}

// talliesDiffer says whether two tallies over n and m differ in any
// category's share (sharesDiffer).
func talliesDiffer(a map[string]int, n int, b map[string]int, m int) bool {
	if (n == 0) != (m == 0) {
		return true
	}
	for _, t := range []map[string]int{a, b} {
		for c := range t {
			if sharesDiffer(a[c], n, b[c], m) {
				return true
			}
		}
	}
	return false
}

func countWord(k int) string {
	if k == 0 {
		return "none"
	}
	return fmt.Sprint(k)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// versionList names the offered versions in wire order: "1.3, 1.2".
func versionList(h *ClientHelloRecord) string {
	var names []string
	for _, v := range h.SupportedVersions {
		if !IsGREASE(uint16(v)) {
			names = append(names, VersionName(uint16(v)))
		}
	}
	if len(names) == 0 {
		return VersionName(uint16(h.LegacyVersion))
	}
	return strings.Join(names, ", ")
}

// extensionList names the extensions in wire order, GREASE as GREASE.
func extensionList(h *ClientHelloRecord) []string {
	out := make([]string, len(h.Extensions))
	for i, e := range h.Extensions {
		if IsGREASE(uint16(e)) {
			out[i] = "GREASE"
		} else {
			out[i] = ExtensionName(uint16(e))
		}
	}
	return out
}

// groupNames names supported groups (GroupName), GREASE as GREASE, in
// one line: "GREASE, X25519MLKEM768, x25519"; "none" for none.
func groupNames(gs []int) string {
	if len(gs) == 0 {
		return "none"
	}
	return strings.Join(groupNameList(gs), ", ")
}

func groupNameList(gs []int) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = GroupName(g)
	}
	return out
}

// GroupName names a supported group or key share group by the IANA "TLS
// Supported Groups" registry ("x25519", "X25519MLKEM768"), a GREASE value
// (RFC 8701) as "GREASE", an unknown one in hex ("0x1234"): the one name
// the table's HelloRetryRequest words and diff's rows use.
func GroupName(g int) string {
	switch n, ok := groupNameOf[g]; {
	case ok:
		return n
	case IsGREASE(uint16(g)):
		return "GREASE"
	}
	return fmt.Sprintf("0x%04x", g)
}

var groupNameOf = map[int]string{
	21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
	26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519", 30: "x448",
	256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144", 260: "ffdhe8192",
	0x11eb: "SecP256r1MLKEM768", 0x11ec: "X25519MLKEM768", 0x11ed: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00", 0x639a: "SecP256r1Kyber768Draft00",
}

// pskModeNames names psk_key_exchange_modes (RFC 8446, Section 4.2.9);
// "absent" when the extension is.
func pskModeNames(h *ClientHelloRecord) string {
	if h.PSKKeyExchangeModes == nil {
		return "absent"
	}
	if len(h.PSKKeyExchangeModes) == 0 {
		return "empty"
	}
	out := make([]string, len(h.PSKKeyExchangeModes))
	for i, m := range h.PSKKeyExchangeModes {
		switch m {
		case 0:
			out[i] = "psk_ke"
		case 1:
			out[i] = "psk_dhe_ke"
		default:
			out[i] = fmt.Sprint(m)
		}
	}
	return strings.Join(out, ", ")
}

// ticketCategory: what a hello's session_ticket extension does (RFC 5077,
// Section 3.2): absent, asks (empty), or carries a ticket.
func ticketCategory(h *ClientHelloRecord) string {
	switch {
	case !h.SessionTicket.Offered:
		return "absent"
	case h.SessionTicket.Len == 0:
		return "asks"
	}
	return "carries a ticket"
}
