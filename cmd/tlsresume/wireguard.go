package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

const wireguardUsage = `Usage: tlsresume wireguard config [--peer NAME] [--endpoint HOST:PORT] [--port N] [--qr] [--out FILE] [--ca-dir DIR]

Commands:
  config   the WireGuard configuration a phone or tablet installs to send all
           its traffic through tlsresume (tlsresume proxy --wireguard ADDR),
           as wg-quick text or a QR code; creates the device's keys on first use

The keys live in the CA directory's wireguard folder, each file 0600.
Run "tlsresume wireguard config --help" for its flags, each with an example.
`

// runWireGuard runs "tlsresume wireguard ARGS...": args start with the
// subcommand. Exit codes: 0 ok, 1 failure, 2 usage error.
func runWireGuard(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, wireguardUsage)
		return 2
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "config":
		return runWireGuardConfig(ctx, args, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, wireguardUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "tlsresume wireguard: unknown command %q: want config (run \"tlsresume wireguard --help\")\n", cmd)
		return 2
	}
}

func runWireGuardConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wireguard config", flag.ContinueOnError)
	peer := fs.String("peer", wireguard.DefaultDevice, "device `name`, 1 to 32 of a-z, 0-9 and '-'; a new name gets new keys and addresses, e.g. --peer tablet")
	endpoint := fs.String("endpoint", "", "`HOST:PORT` the device reaches this laptop at (default: this laptop's LAN address and --port), e.g. --endpoint 192.168.1.20:51820")
	port := fs.Uint("port", wireguard.DefaultPort, "UDP `port` of tlsresume proxy --wireguard, used with the LAN address it chooses, e.g. --port 51821")
	qr := fs.Bool("qr", false, "print a QR code for the WireGuard app to scan instead of the text")
	out := fs.String("out", "", "write the configuration to `file` (created 0600: it holds the device's private key), e.g. --out phone.conf")
	setUsage(fs, "tlsresume wireguard config [--peer NAME] [--endpoint HOST:PORT] [--port N] [--qr] [--out FILE] [--ca-dir DIR]", `  tlsresume wireguard config --qr
  tlsresume wireguard config --peer tablet --endpoint 192.168.1.20:51820 --out tablet.conf
  tlsresume wireguard config --ca-dir ~/tlsresume-ca --peer phone
`)
	dir, code, ok := caFlags(fs, args, stderr)
	if !ok {
		return code
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tlsresume wireguard config: %v\n", err)
		return 1
	}
	if err := wireguard.CheckName(*peer); err != nil {
		fmt.Fprintf(stderr, "tlsresume wireguard config: --peer: %v\n", err)
		return 2
	}
	if *port == 0 || *port > 65535 {
		fmt.Fprintf(stderr, "tlsresume wireguard config: --port %d: want 1 to 65535\n", *port)
		return 2
	}
	choice, err := wireguard.ChooseEndpoint(*endpoint, uint16(*port))
	if err != nil {
		return fail(err)
	}
	st, err := wireguard.OpenStore(dir)
	if err != nil {
		return fail(err)
	}
	d, created, err := st.Device(*peer)
	if err != nil {
		return fail(err)
	}
	text, err := wireguard.WGQuick(d, st.ServerKey(), choice.Endpoint)
	if err != nil {
		return fail(err)
	}
	if created {
		fmt.Fprintf(stderr, "created device %q: %s, %s; keys in %s\n", d.Name, d.IPv4, d.IPv6, st.DeviceFile(d.Name))
	}
	fmt.Fprintln(stderr, choice.Describe())
	if err := writeWireGuardConfig(text, d.Name, *qr, *out, stdout, stderr); err != nil {
		return fail(err)
	}
	_, p, _ := net.SplitHostPort(choice.Endpoint)
	names := []string{d.Name}
	if all, err := st.Devices(); err == nil {
		names = names[:0]
		for _, sd := range all {
			names = append(names, sd.Name)
		}
	}
	fmt.Fprintf(stderr, "then run: tlsresume proxy --wireguard 0.0.0.0:%s --peer %s, and trust tlsresume's CA on the device (tlsresume ca show)\n", p, strings.Join(names, ","))
	if created {
		fmt.Fprintln(stderr, "a proxy already running serves a new device once it is added on the live view's Devices page (or after a restart with --peer)")
	}
	return 0
}

// writeWireGuardConfig prints text, or its QR code, or writes it to a 0600
// file.
func writeWireGuardConfig(text, name string, qr bool, out string, stdout, stderr io.Writer) error {
	switch {
	case out != "":
		if err := writePrivateFile(out, []byte(text)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (0600: it holds device %q's private key)\n", out, name)
	case qr:
		code, err := wireguard.QRTerminal(text, false)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, code)
		fmt.Fprint(stderr, "scan it in the WireGuard app: + then \"Create from QR code\" (iOS) or \"Scan from QR code\" (Android)\n")
	default:
		fmt.Fprint(stdout, text)
	}
	return nil
}

// writePrivateFile creates path 0600 and writes data; an existing file is
// refused rather than overwritten or left with wider permissions.
func writePrivateFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing the configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	return nil
}
