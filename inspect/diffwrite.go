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
// rows that differ are marked "≠" and followed by their meaning.
func WriteDiff(w io.Writer, d *Diff) error {
	var b strings.Builder
	for _, s := range []DiffSide{d.A, d.B} {
		for i, l := range wrapWords(s.Name+": "+sideWords(s), diffWidth-len(diffIndent)) {
			if i > 0 {
				l = diffIndent + l
			}
			b.WriteString(l + "\n")
		}
	}
	section := ""
	for _, r := range d.Rows {
		if r.Section != section {
			section = r.Section
			title := "THE CLIENTHELLOS"
			if section == DiffResumption {
				title = "RESUMPTION"
			}
			b.WriteString("\n")
			writeDiffLine(&b, "", title, []string{d.A.Name}, []string{d.B.Name})
		}
		mark := ""
		if r.Differs {
			mark = "≠"
		}
		writeDiffLine(&b, mark, r.Field, wrapWords(r.A, diffValueWidth), wrapWords(r.B, diffValueWidth))
		if r.Differs && r.Meaning != "" {
			for _, l := range wrapWords(r.Meaning, diffWidth-len(diffIndent)) {
				b.WriteString(diffIndent + l + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
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
