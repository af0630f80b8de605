package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite generated files: README.md's flag tables, the device page's screenshot")

const readmePath = "../../README.md"

// README.md's flag tables are generated between these two lines.
const (
	flagsStart = "<!-- flags: generated from the commands' flag sets by `go test ./cmd/tlsresume -run TestREADMEFlags -update` -->"
	flagsEnd   = "<!-- end of flags -->"
)

// flagCommands are the commands whose flags README.md lists, in its order.
var flagCommands = []string{
	"proxy", "inspect", "report", "diff", "web",
	"ca init", "ca show", "ca path", "ca export", "wireguard config", "version",
}

// TestREADMEFlags: README.md's flag tables are what each command's --help
// lists (the flags, their value names, defaults and meanings), so a flag
// added, renamed or explained anew shows in the README by -update, and a
// README that names a flag no command has fails.
func TestREADMEFlags(t *testing.T) {
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start, end := strings.Index(doc, flagsStart), strings.Index(doc, flagsEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the flag tables' markers %q … %q", flagsStart, flagsEnd)
	}
	want := flagTables(t)
	if got := doc[start+len(flagsStart)+1 : end]; got != want {
		if !*update {
			t.Fatalf("README.md's flag tables differ from the commands' --help; run go test ./cmd/tlsresume -run TestREADMEFlags -update\ngot:\n%s\nwant:\n%s", got, want)
		}
		doc = doc[:start+len(flagsStart)+1] + want + doc[end:]
		if err := os.WriteFile(readmePath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFlagCommandsComplete: every command the usage text names is in
// flagCommands, so a new command's flags cannot miss the README.
func TestFlagCommandsComplete(t *testing.T) {
	for _, m := range regexp.MustCompile(`(?m)^  tlsresume (\w+)( (?:init\|[a-z|]+|config))?`).FindAllStringSubmatch(usage, -1) {
		cmd := m[1]
		if cmd == "help" {
			continue
		}
		subs := []string{""}
		if m[2] != "" {
			subs = strings.Split(strings.TrimSpace(m[2]), "|")
		}
		for _, sub := range subs {
			name := strings.TrimSpace(cmd + " " + sub)
			if !slices.Contains(flagCommands, name) {
				t.Errorf("usage names %q, which flagCommands (README.md's flag tables) lacks", name)
			}
		}
	}
}

// flagTables renders each command's flags as README.md shows them: one
// table per group of commands whose flags are the same.
func flagTables(t *testing.T) string {
	var groups []string
	tables := map[string]string{}
	names := map[string][]string{}
	for _, cmd := range flagCommands {
		table := flagTable(helpFlags(t, cmd))
		if table == "" {
			continue
		}
		if _, ok := tables[table]; !ok {
			groups = append(groups, table)
			tables[table] = table
		}
		names[table] = append(names[table], "`tlsresume "+cmd+"`")
	}
	var b strings.Builder
	for _, table := range groups {
		fmt.Fprintf(&b, "%s:\n\n%s\n", strings.Join(names[table], ", "), table)
	}
	return b.String()
}

// helpFlag is one flag as --help prints it.
type helpFlag struct{ name, value, def, usage string }

// helpFlags runs `tlsresume CMD --help` and reads its flags from what
// flag.PrintDefaults wrote: "  -name value" then "    \tusage (default x)".
func helpFlags(t *testing.T, cmd string) []helpFlag {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(strings.Fields(cmd), "--help"), &stdout, &stderr); code != 0 {
		t.Fatalf("tlsresume %s --help: exit %d: %s", cmd, code, stderr.String())
	}
	help := stdout.String() + stderr.String()
	var out []helpFlag
	for line := range strings.Lines(help) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "  -"):
			head, usage, _ := strings.Cut(line[3:], "\t")
			name, value, _ := strings.Cut(head, " ")
			out = append(out, helpFlag{name: name, value: strings.TrimSpace(value), usage: usage})
		case strings.HasPrefix(line, "    \t") && len(out) > 0:
			f := &out[len(out)-1]
			f.usage = strings.TrimSpace(f.usage + " " + strings.TrimPrefix(line, "    \t"))
		}
	}
	for i := range out {
		if m := defaultRE.FindStringSubmatch(out[i].usage); m != nil {
			out[i].usage, out[i].def = out[i].usage[:len(out[i].usage)-len(m[0])], strings.Trim(m[1], `"`)
		}
	}
	return out
}

// defaultRE is the default flag.PrintDefaults appends to a usage.
var defaultRE = regexp.MustCompile(` \(default ("[^"]*"|[^:)]*)\)$`)

func flagTable(flags []helpFlag) string {
	if len(flags) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| flag | default | meaning |\n|---|---|---|\n")
	for _, f := range flags {
		name := "`--" + f.name
		if len(f.name) == 1 {
			name = "`-" + f.name // -v, as --help writes it
		}
		if f.value != "" {
			name += " " + f.value
		}
		def := ""
		if f.def != "" {
			def = "`" + f.def + "`"
		}
		fmt.Fprintf(&b, "| %s` | %s | %s |\n", name, def, strings.ReplaceAll(f.usage, "|", `\|`))
	}
	return b.String()
}
