// Command tlsresume finds out, with evidence, why TLS session resumption
// does or does not happen: it reads captures (inspect), manages its CA (ca)
// and the WireGuard configurations of devices (wireguard), runs as an
// intercepting proxy (proxy, the default) with a live view in a browser,
// and serves that view over saved records (web).
//
// Exit codes: 0 success, 1 failure while running, 2 usage error or a file
// that cannot be read.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tlsresume/tlsresume/inspect"
)

const usage = `tlsresume — why does (or doesn't) TLS session resumption happen?

Usage:
  tlsresume [proxy]            run the intercepting HTTP CONNECT proxy on 127.0.0.1:8080,
                               with its live view at http://127.0.0.1:8081/
  tlsresume inspect FILE...    one row per ClientHello in a pcap/pcapng capture
  tlsresume report FILE...     per client program and host: who offered what, who resumed, why not
  tlsresume diff FILE... --a SELECTOR --b SELECTOR
                               two programs' or connections' hellos and resumption, side by side
  tlsresume web FILE...        the live view in a browser over saved --log files and captures
  tlsresume ca init|show|export|path
                               the CA that tlsresume signs certificates with
  tlsresume wireguard config [--peer NAME] [--qr]
                               the WireGuard configuration a phone installs (text or QR code)
  tlsresume version            version, Go version and commit
  tlsresume help [COMMAND]     this text, or a command's flags

Run "tlsresume COMMAND --help" for a command's flags, each with an example.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		// tlsresume --help: the commands, not only the default one's flags.
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd := "proxy"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "proxy":
		return runProxy(ctx, args, stdout, stderr)
	case "inspect":
		return runInspect(ctx, args, stdout, stderr)
	case "ca":
		return runCA(ctx, args, stdout, stderr)
	case "wireguard":
		return runWireGuard(ctx, args, stdout, stderr)
	case "report":
		return runReport(ctx, args, stdout, stderr)
	case "web":
		return runWeb(ctx, args, stdout, stderr)
	case "diff":
		return runDiff(ctx, args, stdout, stderr)
	case "version":
		return runVersion(args, stdout, stderr)
	case "help":
		if len(args) > 0 {
			return run(ctx, []string{args[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	linef(stderr, "tlsresume: unknown command %q (run \"tlsresume help\")", cmd)
	return 2
}

// isHelp says whether arg asks for help, as the flag package reads it.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "--h":
		return true
	}
	return false
}

// linef prints one line to w: the text of format and args shown through
// inspect.Printable. Messages carry file names, what files hold and what
// peers chose (error texts embed them), so no line lets a terminal act on a
// control byte in them: every message on stderr goes through linef.
func linef(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, inspect.Printable(fmt.Sprintf(format, args...)))
}

// parseFlags parses flags that may come before, between or after positional
// arguments (flag.Parse alone stops at the first positional one), and
// returns the positional arguments. It prints one line for a bad flag.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stderr)
				fs.Usage()
				return nil, 0, false
			}
			linef(stderr, "tlsresume %s: %v (run \"tlsresume %s --help\")", fs.Name(), err, fs.Name())
			return nil, 2, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// setUsage installs a --help text: a synopsis, the flags, and examples.
func setUsage(fs *flag.FlagSet, synopsis, examples string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nExamples:\n%s", examples)
	}
}

// checkInputs validates what every command reading files shares: --format
// is table or jsonl, and at least one file is named. It prints one line and
// returns false (exit 2) otherwise.
func checkInputs(cmd, format string, files []string, what string, stderr io.Writer) bool {
	switch {
	case format != "table" && format != "jsonl":
		linef(stderr, "tlsresume %s: --format must be table or jsonl, not %q", cmd, format)
		return false
	case len(files) == 0:
		linef(stderr, "tlsresume %s: name %s, or - for stdin", cmd, what)
		return false
	}
	return true
}

// openInput opens a named file, or stdin for "-"; close releases it.
func openInput(name string) (r io.Reader, close func(), err error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}
