package inspect

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README.md's generated tables")

const readme = "../README.md"

// The verdict table in README.md is generated from VerdictCodeDocs,
// between these two lines.
const (
	verdictTableStart = "<!-- verdict codes: generated from inspect.VerdictCodeDocs by `go test ./inspect -run TestREADMECodes -update` -->"
	verdictTableEnd   = "<!-- end of verdict codes -->"
)

// TestREADMECodes: README.md's verdict table is VerdictCodeDocs, and every
// value of the record's other typed codes is named in README.md.
func TestREADMECodes(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, verdictTableStart)
	end := strings.Index(doc, verdictTableEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the generated verdict table's markers")
	}
	want := verdictTable()
	got := doc[start+len(verdictTableStart)+1 : end]
	if got != want {
		if *update {
			doc = doc[:start+len(verdictTableStart)+1] + want + doc[end:]
			if err := os.WriteFile(readme, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Errorf("README.md's verdict table differs from VerdictCodeDocs; run go test ./inspect -run TestREADMECodes -update\ngot:\n%s\nwant:\n%s", got, want)
		}
	}
	for _, list := range []struct {
		name string
		docs []CodeDoc
		row  string // the README row that lists them
	}{
		{"source", SourceDocs, "| `source` *contract* |"},
		{"attempt", AttemptDocs, "| `attempt` *contract* |"},
		{"ticket state", TicketStateDocs, "| `ticket` |"},
		{"cache result", CacheResultDocs, "| `cache` |"},
	} {
		line := readmeLine(doc, list.row)
		if line == "" {
			t.Errorf("README.md has no row %q", list.row)
			continue
		}
		for _, c := range list.docs {
			if !strings.Contains(line, "`"+c.Code+"`") {
				t.Errorf("README.md's row %s does not name the %s %q", list.row, list.name, c.Code)
			}
		}
	}
}

// TestCodeDocs: each list names each code once, and every verdict code
// constant is in VerdictCodeDocs (read from this package's source, so a
// constant added without its meaning fails here).
func TestCodeDocs(t *testing.T) {
	for _, docs := range [][]CodeDoc{VerdictCodeDocs, SourceDocs, AttemptDocs, TicketStateDocs, CacheResultDocs} {
		seen := map[string]bool{}
		for _, c := range docs {
			if seen[c.Code] || c.Meaning == "" || strings.Contains(c.Meaning, "|") {
				t.Errorf("%q: listed twice, without a meaning, or with a | that breaks the table", c.Code)
			}
			seen[c.Code] = true
		}
	}
	src, err := os.ReadFile("verdictcodes.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := regexp.MustCompile(`(?m)^\s+Code\w+\s+VerdictCode = "(\w+)"`).FindAllStringSubmatch(string(src), -1)
	if len(consts) != len(VerdictCodeDocs) {
		t.Errorf("%d verdict code constants, %d documented", len(consts), len(VerdictCodeDocs))
	}
	for _, m := range consts {
		if VerdictCode(m[1]).Meaning() == "" {
			t.Errorf("verdict code %q has no meaning in VerdictCodeDocs", m[1])
		}
		if f := VerdictCode(m[1]).Family(); f == "" {
			t.Errorf("verdict code %q has no family", m[1])
		}
	}
}

func verdictTable() string {
	var b strings.Builder
	b.WriteString("| code | meaning |\n|---|---|\n")
	for _, c := range VerdictCodeDocs {
		b.WriteString("| `" + c.Code + "` | " + c.Meaning + " |\n")
	}
	return b.String()
}

func readmeLine(doc, prefix string) string {
	for line := range strings.Lines(doc) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
