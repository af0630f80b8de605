package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// loadRecords reads records from each named file, or stdin for "-": JSONL
// (the proxy's --log, or inspect --format jsonl) or a pcap/pcapng capture,
// told apart by the file's first bytes. A capture's records come in the
// order their hellos were sent. Records without an id (captures, inspect's
// JSONL) are numbered p1, p2, … across all files, so conn= selects them.
// Lines that are not records are skipped and reported in warnings.
//
// A capture cut short inside its last frame is read to its last complete
// frame: truncated is then true and a warning says so.
func loadRecords(names []string) (recs []*inspect.ConnRecord, warnings []string, truncated bool, err error) {
	warnings, truncated, err = eachRecord(names, func(r *inspect.ConnRecord) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, warnings, truncated, err
	}
	return recs, warnings, truncated, nil
}

// eachRecord reads records as loadRecords does and calls fn with each in
// turn, as it is read: a reader keeps only what it wants (`tlsresume web`
// hands each to its view, never holding a log's records all at once). An
// error from fn ends the reading and is returned.
func eachRecord(names []string, fn func(*inspect.ConnRecord) error) (warnings []string, truncated bool, err error) {
	n := 0
	numbered := func(r *inspect.ConnRecord) error {
		if r.ID == "" {
			n++
			r.ID = fmt.Sprintf("p%d", n)
		}
		return fn(r)
	}
	for _, name := range names {
		warn, err := eachInFile(name, numbered)
		if errors.Is(err, errTruncated) {
			truncated = true
			warn, err = fmt.Sprintf("%s: %v", name, err), nil
		}
		if err != nil {
			return warnings, truncated, err
		}
		if warn != "" {
			warnings = append(warnings, warn)
		}
	}
	return warnings, truncated, nil
}

// errTruncated: a capture ends inside a frame; what came before was read.
var errTruncated = errors.New("the capture is cut short inside its last frame (still being written, or copied short): read to the last complete frame")

// truncatedExit is a command's exit code once its output is written: 1 when
// an input was cut short, unless --allow-truncated accepts that.
func truncatedExit(cmd string, truncated, allowed bool, stderr io.Writer) int {
	if !truncated || allowed {
		return 0
	}
	linef(stderr, "tlsresume %s: an input was cut short; the output holds what it had (--allow-truncated accepts this)", cmd)
	return 1
}

// Capture file magic numbers: pcap in either byte order, with microsecond
// or nanosecond timestamps, and pcapng's Section Header Block type.
var captureMagic = [][]byte{
	{0xa1, 0xb2, 0xc3, 0xd4}, {0xd4, 0xc3, 0xb2, 0xa1},
	{0xa1, 0xb2, 0x3c, 0x4d}, {0x4d, 0x3c, 0xb2, 0xa1},
	{0x0a, 0x0d, 0x0d, 0x0a},
}

func isCapture(head []byte) bool {
	return slices.ContainsFunc(captureMagic, func(m []byte) bool { return bytes.HasPrefix(head, m) })
}

// eachInFile reads one file, calling fn with each record; warn says what
// was skipped. A capture's records are sorted (readCapture), so it is read
// whole first; a log is read a line at a time.
func eachInFile(name string, fn func(*inspect.ConnRecord) error) (warn string, err error) {
	r, closeInput, err := openInput(name)
	if err != nil {
		return "", err
	}
	defer closeInput()
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(4) // a shorter file is not a capture
	if isCapture(head) {
		recs, err := readCaptureRecords(br)
		if err != nil && !errors.Is(err, errTruncated) {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		for i, rec := range recs {
			recs[i] = nil // the reader's now
			if err := fn(rec); err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
		}
		return "", err // nil, or errTruncated after what came before
	}
	bad, first, err := inspect.ReadLogFunc(br, fn)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if bad > 0 {
		warn = fmt.Sprintf("%s: skipped %d lines that are not records (first: line %d)", name, bad, first)
	}
	return warn, nil
}

// readCaptureRecords reads a capture into connection records, in the order
// the hellos were sent (ReadCapture yields them as their verdicts become
// known).
func readCaptureRecords(r io.Reader) ([]*inspect.ConnRecord, error) {
	hellos, err := readCapture(r)
	recs := make([]*inspect.ConnRecord, len(hellos))
	for i, h := range hellos {
		recs[i] = &inspect.ConnRecord{Record: *h}
	}
	return recs, err
}

// readCapture reads a capture's records in the order the ClientHellos were
// seen (records are produced when each verdict is known).
func readCapture(r io.Reader) ([]*inspect.Record, error) {
	var recs []*inspect.Record
	st, err := inspect.ReadCapture(r, func(rec *inspect.Record) error {
		recs = append(recs, rec)
		return nil
	})
	if err == nil && st.Truncated {
		err = errTruncated
	}
	slices.SortStableFunc(recs, func(a, b *inspect.Record) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return a.Frame - b.Frame
	})
	return recs, err
}

// inputExit is the exit code for an error from loadRecords: 2 for a file
// that cannot be opened or is not a capture it claimed to be, else 1.
func inputExit(err error) int {
	var pe *os.PathError
	if errors.As(err, &pe) || errors.Is(err, pcap.ErrFormat) || errors.Is(err, errRecordLog) {
		return 2
	}
	return 1
}
