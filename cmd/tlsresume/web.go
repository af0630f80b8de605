package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/proxy/web"
)

const webExamples = `  tlsresume web conns.jsonl                         # the proxy's saved --log, in a browser
  tlsresume web capture.pcapng                       # a capture (Wireshark on a Mac, tcpdump on a phone's gateway)
  tlsresume web --web 127.0.0.1:9000 a.jsonl b.pcap  # several files in one view

The page is the proxy's live view over saved records: connections with both legs,
clients × hosts, a timeline per program and host, and the diff of two clients.
`

func runWeb(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("web", flag.ContinueOnError)
	var w webFlags
	w.register(fs)
	setUsage(fs, "tlsresume web [--web ADDR] FILE... (the proxy's --log, inspect --format jsonl, pcap or pcapng; - reads stdin)", webExamples)
	files, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if len(files) == 0 {
		linef(stderr, "tlsresume web: give at least one file: a --log, a JSONL of inspect, or a capture (run \"tlsresume web --help\")")
		return 2
	}
	if err := w.validate(); err != nil || w.addr == "off" {
		if err == nil {
			err = fmt.Errorf("--web off: this command only serves the view")
		}
		linef(stderr, "tlsresume web: %v", err)
		return 2
	}
	log := newLogger(stderr, false, false)
	ln, err := w.listen(log, false)
	if err != nil {
		linef(stderr, "tlsresume web: %v", err)
		return 1
	}
	cfg, err := w.config(ln)
	if err != nil {
		ln.Close()
		linef(stderr, "tlsresume web: %v", err)
		return 1
	}
	cfg.Source, cfg.Log = joinNames(files), log
	view := web.New(cfg)
	n, err := loadView(view, files, stderr)
	if err != nil {
		ln.Close()
		linef(stderr, "tlsresume web: %v", err)
		return 2
	}
	linef(stderr, "%d records from %s.", n, joinNames(files))
	if err := <-serveView(ctx, view, ln, cfg.Token, stderr, log); err != nil {
		linef(stderr, "tlsresume web: %v", err)
		return 1
	}
	return 0
}

// loadView reads the files into view a record at a time: the view keeps
// each packed, and no more than one record is held unpacked, whatever the
// files' size. A cut-short capture is served as far as it goes, with the
// warning.
func loadView(view *web.Server, files []string, stderr io.Writer) (n int, err error) {
	warnings, _, err := eachRecord(files, func(r *inspect.ConnRecord) error {
		view.Add(r)
		n++
		return nil
	})
	for _, msg := range warnings {
		linef(stderr, "tlsresume web: %s", msg)
	}
	// The reading's garbage (a record's JSON, its Go structs) goes back to
	// the system now, not when the runtime's scavenger gets to it: the
	// view then sits at what its history holds.
	debug.FreeOSMemory()
	return n, err
}
