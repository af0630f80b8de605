package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"

	"github.com/tlsresume/tlsresume/inspect"
)

const inspectExamples = `  tlsresume inspect capture.pcapng                    # a table, one row per ClientHello
  tlsresume inspect --format jsonl capture.pcap > hellos.jsonl
  tcpdump -i any -w - 'tcp port 443' | tlsresume inspect -   # read a capture from stdin

Reading the table: ATTEMPT is how the client tried to resume (psk, ticket,
session_id or none); TKT is the session_ticket extension ("-" absent, "ask"
empty = asks for a ticket, else the ticket's length); PSK the number of
pre_shared_key identities; MODES psk_key_exchange_modes (1 = psk_dhe_ke,
0 = psk_ke); 0RTT early_data; SID the legacy session ID length; RESUMED what the
server did (psk, ticket, session_id, no, hrr, ? = not seen). The second line of
each row gives the JA4 and, in words, why it did or did not resume.
`

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	format := fs.String("format", "table", "output `format`: table (for people, fits 120 columns) or jsonl (one JSON record per line, every field), e.g. --format jsonl")
	allowTruncated := fs.Bool("allow-truncated", false, "exit 0 although a capture is cut short inside its last frame (it is read to the last complete one), e.g. --allow-truncated")
	setUsage(fs, "tlsresume inspect [--format table|jsonl] FILE... (- reads stdin)", inspectExamples)
	files, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if !checkInputs("inspect", *format, files, "a capture file (pcap or pcapng)", stderr) {
		return 2
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	var write func(*inspect.Record) error
	var table *inspect.TableWriter
	if *format == "jsonl" {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		write = func(r *inspect.Record) error { return enc.Encode(r) }
	} else {
		table = inspect.NewTableWriter(out)
		write = table.Write
	}
	total, truncated := 0, false
	for _, name := range files {
		if ctx.Err() != nil {
			return 1
		}
		recs, err := inspectFile(name)
		for _, r := range recs {
			if werr := write(r); werr != nil {
				linef(stderr, "tlsresume inspect: writing: %v", werr)
				return 1
			}
		}
		total += len(recs)
		if errors.Is(err, errTruncated) {
			linef(stderr, "tlsresume inspect: %s: %v", name, err)
			truncated, err = true, nil
		}
		if err != nil {
			out.Flush()
			linef(stderr, "tlsresume inspect: %s: %v", name, err)
			return inputExit(err)
		}
	}
	if total == 0 {
		if table != nil {
			table.Header()
		}
		out.Flush()
		linef(stderr, "tlsresume inspect: no TLS ClientHello in the capture")
	}
	out.Flush()
	return truncatedExit("inspect", truncated, *allowTruncated, stderr)
}

// inspectFile reads one capture and returns its records in the order the
// ClientHellos were seen (records are produced when each verdict is known).
func inspectFile(name string) ([]*inspect.Record, error) {
	r, closeInput, err := openInput(name)
	if err != nil {
		return nil, err
	}
	defer closeInput()
	br := bufio.NewReaderSize(r, 1<<16)
	if head, _ := br.Peek(64); !isCapture(head) && bytes.HasPrefix(bytes.TrimLeft(head, " \t\r\n"), []byte("{")) {
		return nil, errRecordLog
	}
	return readCapture(br)
}

// errRecordLog: inspect was given JSON lines (the proxy's --log, or
// inspect --format jsonl), which report and web read.
var errRecordLog = errors.New("this is a record log (JSON lines: the proxy's --log, or inspect --format jsonl), not a capture: " +
	"use tlsresume report FILE (per program and host) or tlsresume web FILE (in a browser)")
