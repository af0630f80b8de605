package inspect

import (
	"fmt"
	"io"
	"strings"
)

// Diff table geometry: a mark ("≠ " on rows that differ), the field, then
// A and B, 120 columns in all; a differing row's meaning follows on
// indented lines.
const (
	diffMarkWidth  = 2
	diffFieldWidth = 22
	diffValueWidth = 47
	diffWidth      = diffMarkWidth + diffFieldWidth + 1 + 2*diffValueWidth + 1
	diffIndent     = "    "
)

// WriteDiff prints a Diff for a 120-column terminal: who A and B are, then
// one row per field, A beside B, long values wrapped within their column;
// rows that differ are marked "≠" and followed by their meaning. The
// resumption rows come first, then the hellos' fields; the fingerprint
// rows come last, folded to one line each (DiffRow.ABrief, BBrief), with
// one note for their meanings: WriteDiffAll shows them whole.
func WriteDiff(w io.Writer, d *Diff) error { return writeDiff(w, d, false) }

// WriteDiffAll prints a Diff as WriteDiff does, with every value of the
// fingerprint rows and what each of their differences means.
func WriteDiffAll(w io.Writer, d *Diff) error { return writeDiff(w, d, true) }

func writeDiff(w io.Writer, d *Diff, all bool) error {
	var b strings.Builder
	for _, s := range []DiffSide{d.A, d.B} {
		for i, l := range wrapWords(s.Name+": "+sideWords(s), diffWidth-len(diffIndent)) {
			if i > 0 {
				l = diffIndent + l
			}
			b.WriteString(l + "\n")
		}
	}
	section, folded := "", false
	for _, r := range d.Rows {
		if title := diffTitle(r); title != section {
			section = title
			b.WriteString("\n")
			writeDiffLine(&b, "", title, []string{d.A.Name}, []string{d.B.Name})
		}
		mark := ""
		if r.Differs {
			mark = "≠"
		}
		a, bv, meaning := r.A, r.B, r.Meaning
		if r.Fingerprint && !all {
			a, bv, meaning = r.ABrief, r.BBrief, ""
			folded = folded || r.Differs || r.ABrief != r.A || r.BBrief != r.B
		}
		writeDiffLine(&b, mark, r.Field, wrapWords(a, diffValueWidth), wrapWords(bv, diffValueWidth))
		if r.Differs && meaning != "" {
			for _, l := range wrapWords(meaning, diffWidth-len(diffIndent)) {
				b.WriteString(diffIndent + l + "\n")
			}
		}
	}
	if folded {
		for _, l := range wrapWords("These rows shape the fingerprint, not whether a session resumes; --all shows every value and what each difference means.", diffWidth-len(diffIndent)) {
			b.WriteString(diffIndent + l + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// diffTitle is the heading a row is printed under.
func diffTitle(r DiffRow) string {
	switch {
	case r.Fingerprint:
		return "FINGERPRINTS"
	case r.Section == DiffResumption:
		return "RESUMPTION"
	}
	return "THE CLIENTHELLOS"
}

// sideWords describes one set: its selector, size, programs and hosts.
func sideWords(s DiffSide) string {
	var parts []string
	if s.Selector != "" {
		parts = append(parts, s.Selector)
	}
	parts = append(parts, fmt.Sprintf("%s, %s", plural(s.Conns, "connection", "connections"), plural(s.Hellos, "hello", "hellos")))
	if len(s.Programs) > 0 {
		parts = append(parts, pluralWord(len(s.Programs), "program", "programs")+" "+firstFew(s.Programs, 3))
	}
	if len(s.Hosts) > 0 {
		parts = append(parts, pluralWord(len(s.Hosts), "host", "hosts")+" "+firstFew(s.Hosts, 3))
	}
	if len(s.LikelyPrograms) > 0 && s.byJA4 {
		parts = append(parts, firstFew(s.LikelyPrograms, 2))
	}
	return strings.Join(parts, " · ")
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// firstFew lists up to n items, then how many more there are.
func firstFew(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
}

// writeDiffLine writes one row, as many lines as its longest cell needs;
// each line of a cell is shown through fit.
func writeDiffLine(b *strings.Builder, mark, field string, a, bv []string) {
	lines := max(len(a), len(bv), 1)
	for i := range lines {
		var l strings.Builder
		m, f := "", ""
		if i == 0 {
			m, f = mark, fit(field, diffFieldWidth)
		}
		l.WriteString(pad(m, diffMarkWidth) + pad(f, diffFieldWidth) + " ")
		l.WriteString(pad(fit(cell(a, i), diffValueWidth), diffValueWidth) + " " + fit(cell(bv, i), diffValueWidth))
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
}

func cell(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

func pad(s string, w int) string {
	return s + strings.Repeat(" ", max(w-runeLen(s), 0))
}

// wrapWords shows s through Printable (see fit) and breaks it into lines
// of at most width runes at spaces; a word longer than a line is cut.
func wrapWords(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(Printable(s)) {
		for runeLen(word) > width {
			if line != "" {
				lines = append(lines, line)
				line = ""
			}
			rs := []rune(word)
			lines = append(lines, string(rs[:width]))
			word = string(rs[width:])
		}
		switch {
		case line == "":
			line = word
		case runeLen(line)+1+runeLen(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}
