package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tlsresume/tlsresume/certs"
)

const caUsage = `Usage: tlsresume ca COMMAND [--ca-dir DIR] [flags]

Commands:
  init     create the CA if none exists; never overwrites one
  show     subject, SHA-256 fingerprint, validity, paths, and how to trust it
  export   write the certificate (never the key) as pem, der or mobileconfig
  path     print the CA directory, for scripts

The CA directory is --ca-dir, else $TLSRESUME_HOME, else the user config
directory's tlsresume folder (~/.config/tlsresume on Linux,
~/Library/Application Support/tlsresume on macOS, %AppData%\tlsresume on Windows).
Run "tlsresume ca COMMAND --help" for its flags, each with an example.
`

// caDirHelp documents --ca-dir the same way in every subcommand.
const caDirHelp = "CA `directory` (default $TLSRESUME_HOME, else the user config directory's tlsresume folder), e.g. --ca-dir ~/tlsresume-ca"

// runCA runs "tlsresume ca ARGS...": args start with the subcommand.
// Exit codes: 0 ok, 1 failure, 2 usage error.
func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, caUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "init":
		return runCAInit(ctx, args, stdout, stderr)
	case "show":
		return runCAShow(ctx, args, stdout, stderr)
	case "export":
		return runCAExport(ctx, args, stdout, stderr)
	case "path":
		return runCAPath(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, caUsage)
		return 0
	}
	if strings.HasPrefix(cmd, "-") {
		linef(stderr, "tlsresume ca: name a command before flags: init, show, export or path (run \"tlsresume ca --help\")")
	} else {
		linef(stderr, "tlsresume ca: unknown command %q: want init, show, export or path (run \"tlsresume ca --help\")", cmd)
	}
	return 2
}

// caFlags parses a subcommand's flags, which all include --ca-dir, and
// returns the CA directory. ok is false when the caller should return code.
func caFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (dir string, code int, ok bool) {
	caDir := fs.String("ca-dir", "", caDirHelp)
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return "", code, false
	}
	if len(pos) > 0 {
		linef(stderr, "tlsresume %s: unexpected argument %q (run \"tlsresume %s --help\")", fs.Name(), pos[0], fs.Name())
		return "", 2, false
	}
	dir, err := certs.Dir(*caDir)
	if err != nil {
		linef(stderr, "tlsresume %s: %v", fs.Name(), err)
		return "", 1, false
	}
	return dir, 0, true
}

func runCAInit(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	setUsage(fs, "tlsresume ca init [--ca-dir DIR]", `  tlsresume ca init
  tlsresume ca init --ca-dir ~/tlsresume-ca
  TLSRESUME_HOME=/srv/tlsresume tlsresume ca init
`)
	dir, code, ok := caFlags(fs, args, stderr)
	if !ok {
		return code
	}
	ca, created, err := certs.Init(dir, time.Now())
	if err != nil {
		linef(stderr, "tlsresume ca init: %v", err)
		return 1
	}
	if created {
		linef(stdout, "created a new CA in %s", ca.Dir)
	} else {
		linef(stdout, "a CA already exists in %s; left as it is", ca.Dir)
	}
	fmt.Fprintln(stdout)
	printCASummary(stdout, ca, time.Now())
	fmt.Fprint(stdout, "\nNext: trust it on your devices; \"tlsresume ca show\" says how.\n")
	return 0
}

func runCAShow(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca show", flag.ContinueOnError)
	setUsage(fs, "tlsresume ca show [--ca-dir DIR]", `  tlsresume ca show
  tlsresume ca show --ca-dir ~/tlsresume-ca
`)
	dir, code, ok := caFlags(fs, args, stderr)
	if !ok {
		return code
	}
	now := time.Now()
	ca, err := certs.Load(dir, now)
	if err != nil {
		linef(stderr, "tlsresume ca show: %v", err)
		return 1
	}
	printCASummary(stdout, ca, now)
	fmt.Fprintf(stdout, "\nExport it for a device: tlsresume ca export --format pem|der|mobileconfig --out FILE\n")
	fmt.Fprintf(stdout, "\nHow to trust it:\n")
	for _, h := range certs.InstallHints(ca.CertFile()) {
		fmt.Fprintf(stdout, "\n  %s\n", h.Platform)
		for _, s := range h.Steps {
			linef(stdout, "    %s", s)
		}
	}
	return 0
}

// printCASummary writes what identifies the CA and where it lives.
func printCASummary(w io.Writer, ca *certs.CA, now time.Time) {
	const day = 24 * time.Hour
	c := ca.Cert
	linef(w, "subject      %s", c.Subject)
	linef(w, "sha256       %s", ca.Fingerprint())
	linef(w, "valid        %s to %s (%d days left)",
		c.NotBefore.UTC().Format("2006-01-02 15:04 MST"), c.NotAfter.UTC().Format("2006-01-02 15:04 MST"), int(c.NotAfter.Sub(now)/day))
	linef(w, "directory    %s", ca.Dir)
	linef(w, "certificate  %s", ca.CertFile())
	linef(w, "key          %s (private: never copy it off this machine)", ca.KeyFile())
}

func runCAExport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca export", flag.ContinueOnError)
	format := fs.String("format", "pem", "`format`: pem (curl, OpenSSL, Linux), der (.cer for Android and Windows) or mobileconfig (iOS and macOS profile), e.g. --format der")
	out := fs.String("out", "", "write to `file` instead of standard output, e.g. --out tlsresume-ca.mobileconfig")
	setUsage(fs, "tlsresume ca export [--format pem|der|mobileconfig] [--out FILE] [--ca-dir DIR]", `  tlsresume ca export > tlsresume-ca.pem
  tlsresume ca export --format der --out tlsresume-ca.cer
  tlsresume ca export --format mobileconfig --out tlsresume-ca.mobileconfig
  tlsresume ca export --ca-dir ~/tlsresume-ca --format pem
`)
	dir, code, ok := caFlags(fs, args, stderr)
	if !ok {
		return code
	}
	f := certs.Format(*format)
	if f.FileName() == "" {
		linef(stderr, "tlsresume ca export: --format must be pem, der or mobileconfig, not %q", *format)
		return 2
	}
	ca, err := certs.Load(dir, time.Now())
	if err != nil {
		linef(stderr, "tlsresume ca export: %v", err)
		return 1
	}
	data, err := ca.Export(f)
	if err != nil {
		linef(stderr, "tlsresume ca export: %v", err)
		return 1
	}
	if *out == "" {
		if _, err := stdout.Write(data); err != nil {
			linef(stderr, "tlsresume ca export: %v", err)
			return 1
		}
		return 0
	}
	// The certificate is public; 0644 lets a web server or adb read it.
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		linef(stderr, "tlsresume ca export: %v", err)
		return 1
	}
	linef(stdout, "wrote %s (%s, %d bytes, SHA-256 %s)", *out, f, len(data), ca.Fingerprint())
	if f == certs.FormatMobileConfig {
		fmt.Fprint(stdout, "On iOS, after installing the profile, turn on full trust in Settings > General > About > Certificate Trust Settings.\n")
	}
	return 0
}

func runCAPath(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ca path", flag.ContinueOnError)
	setUsage(fs, "tlsresume ca path [--ca-dir DIR]", `  tlsresume ca path
  ls -l "$(tlsresume ca path)"
  tlsresume ca path --ca-dir ~/tlsresume-ca
`)
	dir, code, ok := caFlags(fs, args, stderr)
	if !ok {
		return code
	}
	fmt.Fprintln(stdout, dir)
	return 0
}
