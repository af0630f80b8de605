package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"

	"github.com/tlsresume/tlsresume/inspect"
)

const reportExamples = `  tlsresume report conns.jsonl                        # the proxy's --log: per client program and host
  tlsresume report capture.pcapng                     # a capture, read directly
  tlsresume inspect --format jsonl capture.pcap | tlsresume report -
  tlsresume report --format jsonl conns.jsonl          # every count, for scripts

Reading it: one row per client (IP), program (the first request's User-Agent, else the
JA4) and host (with its port unless it is 443: origins on other ports keep other sessions).
OFFERED counts what the ClientHellos attempted (psk, ticket, session_id, none); RESUMED is
how many of the client's handshakes resumed (against tlsresume for proxy records, against
the server for captures); UPSTREAM how many of tlsresume's own upstream handshakes resumed.
Under each row: the program the JA4 likely comes from when no User-Agent named it (a
small table of known TLS stacks: a likely match, never a fact), and WHY NOT: how many
connections each reason covers, commonest first, with the verdict code it comes from
(see README). A ticket counts only if it was issued before the connection started:
the first connections of a page load, opened in parallel, had nothing to resume.
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	format := fs.String("format", "table", "output `format`: table or jsonl (one summary per line, every count), e.g. --format jsonl")
	allowTruncated := fs.Bool("allow-truncated", false, "exit 0 although a capture is cut short inside its last frame (it is read to the last complete one), e.g. --allow-truncated")
	setUsage(fs, "tlsresume report [--format table|jsonl] FILE... (JSONL from the proxy's --log or inspect --format jsonl, or a pcap/pcapng capture; - reads stdin)", reportExamples)
	files, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if !checkInputs("report", *format, files, "a JSONL file (the proxy's --log, or inspect --format jsonl) or a capture", stderr) {
		return 2
	}
	entries, warnings, truncated, err := loadRecords(files)
	for _, w := range warnings {
		linef(stderr, "tlsresume report: %s", w)
	}
	if err != nil {
		linef(stderr, "tlsresume report: %v", err)
		return inputExit(err)
	}
	sums := inspect.Summarize(entries)
	if *format == "jsonl" {
		enc := json.NewEncoder(stdout)
		for _, s := range sums {
			if err := enc.Encode(s); err != nil {
				return 1
			}
		}
		return truncatedExit("report", truncated, *allowTruncated, stderr)
	}
	if err := inspect.WriteSummaries(stdout, sums); err != nil {
		return 1
	}
	return truncatedExit("report", truncated, *allowTruncated, stderr)
}
