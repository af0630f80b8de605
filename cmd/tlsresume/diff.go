package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"

	"github.com/tlsresume/tlsresume/inspect"
)

const diffExamples = `  tlsresume diff conns.jsonl --a program=MyApp --b program=curl     # two programs through the proxy
  tlsresume diff capture.pcapng --a host=api.example.com --b host=cdn.example.com
  tlsresume diff conns.jsonl --a conn=c1 --b conn=c7                # two single connections
  tlsresume diff --format json conns.jsonl --a program=MyApp --b program=curl

Selectors: key=value terms joined by commas, all of which must hold. Keys: program (the
User-Agent's product, else the JA4 less its extension part), ja4, client (IP), host (SNI,
else target or server address, with the port unless it is 443: host=localhost selects
every port of localhost, host=localhost:9445 one of them), conn (the connection id,
exactly: c12, or p3 for the third record of a capture), source, verdict, transport. A
value matches a prefix of the field, ignoring case: program=curl selects curl/8.5.0.

Reading it: one row per field, A beside B; "≠" marks the rows where the two sets behave
differently (in kind, or, when both do something some of the time, by 10 points or more:
1 of 5 against 15 of 27), each followed by what that means for resumption. What happened
comes first (attempts, resumptions, tickets, verdicts), then the hellos' fields; the
fingerprint rows come last, one line each ("27 distinct in 27 hellos"): --all shows their
values, --format json has everything.
`

func runDiff(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	selA := fs.String("a", "", "`selector` of the first set (required), e.g. --a program=MyApp")
	selB := fs.String("b", "", "`selector` of the second set (required), e.g. --b program=curl")
	allowTruncated := fs.Bool("allow-truncated", false, "exit 0 although a capture is cut short inside its last frame (it is read to the last complete one), e.g. --allow-truncated")
	format := fs.String("format", "text", "output `format`: text (for people, fits 120 columns) or json (the diff API's answer), e.g. --format json")
	all := fs.Bool("all", false, "text: show every value of the fingerprint rows (groups, extensions, cipher suites, JA4, JA3) and what each difference means, instead of one line each, e.g. --all")
	setUsage(fs, "tlsresume diff FILE... --a SELECTOR --b SELECTOR [--format text|json] [--all] (JSONL from the proxy's --log or inspect --format jsonl, or a pcap/pcapng capture; - reads stdin)", diffExamples)
	files, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	a, b, ok := diffArgs(*selA, *selB, *format, files, stderr)
	if !ok {
		return 2
	}
	recs, warnings, truncated, err := loadRecords(files)
	for _, w := range warnings {
		linef(stderr, "tlsresume diff: %s", w)
	}
	if err != nil {
		linef(stderr, "tlsresume diff: %v", err)
		return inputExit(err)
	}
	d, err := inspect.CompareSelected(recs, a, b)
	if nm := (*inspect.NoMatchError)(nil); errors.As(err, &nm) {
		linef(stderr, "tlsresume diff: no record matches --%s %s (%d records read)", nm.Side, nm.Selector, len(recs))
		return 1
	} else if err != nil {
		linef(stderr, "tlsresume diff: %v", err)
		return 1
	}
	out := bufio.NewWriter(stdout)
	if *format == "json" {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		err = enc.Encode(d)
	} else if *all {
		err = inspect.WriteDiffAll(out, d)
	} else {
		err = inspect.WriteDiff(out, d)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		linef(stderr, "tlsresume diff: writing: %v", err)
		return 1
	}
	return truncatedExit("diff", truncated, *allowTruncated, stderr)
}

// diffArgs checks diff's flags and parses its selectors, printing one line
// for the first problem.
func diffArgs(selA, selB, format string, files []string, stderr io.Writer) (a, b inspect.Selector, ok bool) {
	fail := func(f string, args ...any) (inspect.Selector, inspect.Selector, bool) {
		linef(stderr, "tlsresume diff: "+f+" (run \"tlsresume diff --help\")", args...)
		return inspect.Selector{}, inspect.Selector{}, false
	}
	switch {
	case format != "text" && format != "json":
		return fail("--format must be text or json, not %q", format)
	case len(files) == 0:
		return fail("name a JSONL file (the proxy's --log, or inspect --format jsonl) or a capture, or - for stdin")
	}
	for _, s := range []struct {
		flag, text string
		sel        *inspect.Selector
	}{{"a", selA, &a}, {"b", selB, &b}} {
		sel, err := inspect.ParseSelector(s.text)
		switch {
		case err != nil:
			return fail("--%s: %v", s.flag, err)
		case sel.String() == "":
			return fail("--%s is required: a selector such as program=curl, host=api.example.com or conn=c1", s.flag)
		}
		*s.sel = sel
	}
	return a, b, true
}
