package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// This file drives real software for the end-to-end tests in
// realclients_test.go, on top of inspect/tlstest (which finds the
// binaries and runs them in their own process groups): running clients
// with an environment, starting servers, and capturing loopback traffic.

// runTool runs name with stdin as input and returns its stdout and stderr.
func runTool(ctx context.Context, env []string, stdin, name string, args ...string) (string, string, error) {
	cmd := tlstest.Command(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	tlstest.KillGroup(cmd) // stragglers left in the group after a normal exit
	if err != nil {
		err = fmt.Errorf("running %s %s: %w (stderr: %s)", name, strings.Join(args, " "), err, tlstest.Tail(errb.String(), 600))
	}
	return out.String(), errb.String(), err
}

// startTool starts a long-running server; t's cleanup kills it.
func startTool(t *testing.T, ctx context.Context, name string, args ...string) (*exec.Cmd, *tlstest.Buffer) {
	t.Helper()
	out := &tlstest.Buffer{}
	cmd := tlstest.Command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		tlstest.KillGroup(cmd)
		<-exited
	})
	return cmd, out
}

// waitListening polls until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string) error {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never listened: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls cond every 20ms until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

var noDrops = regexp.MustCompile(`(?m)^0 packets dropped by kernel`)

// capture is tcpdump writing one port's loopback traffic to path. It is
// not tlstest.Capture, on purpose: that one syncs by opening marker
// connections to the captured port, which here is the proxy (each would be
// a connection tlsresume handles, without a CONNECT for tunnelBytes), and
// it accepts kernel drops that left no hole, where this fails on any drop.
type capture struct {
	path   string
	cmd    *exec.Cmd
	stderr *tlstest.Buffer
	exited chan struct{}
}

// startCapture captures TCP port on lo into path and returns once packets
// are being written.
func startCapture(t *testing.T, ctx context.Context, port int, path string) *capture {
	t.Helper()
	tcpdump := tlstest.Need(t, "tcpdump")
	// --immediate-mode: with TPACKET_V3 a SIGINT before the block timeout
	// loses the last block. -Z root: tcpdump otherwise drops to user tcpdump,
	// who cannot write into a root-owned t.TempDir. -B: immediate mode
	// spends a whole snapshot per ring slot, so give the ring room.
	c := &capture{path: path, stderr: &tlstest.Buffer{}, exited: make(chan struct{})}
	c.cmd = tlstest.Command(ctx, tcpdump, "-i", "lo", "-n", "-s", "0", "-B", "32768", "-U", "--immediate-mode",
		"-Z", "root", "-w", path, fmt.Sprintf("tcp port %d", port))
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() { c.stop() })
	ready := func() bool {
		select {
		case <-c.exited:
			return true
		default:
		}
		fi, err := os.Stat(path)
		return strings.Contains(c.stderr.String(), "listening on") && err == nil && fi.Size() >= 24
	}
	err := waitFor(ctx, ready)
	select {
	case <-c.exited:
		err = errors.New("tcpdump exited")
	default:
	}
	if err != nil {
		msg := tlstest.Tail(c.stderr.String(), 400)
		if s := strings.ToLower(msg); strings.Contains(s, "permission") || strings.Contains(s, "not permitted") {
			tlstest.Unavailable(t, "tcpdump cannot capture on lo: %s", msg)
		}
		t.Fatalf("tcpdump did not start: %v: %s", err, msg)
	}
	time.Sleep(300 * time.Millisecond) // let the kernel filter settle before the first SYN
	return c
}

// stop ends the capture with SIGINT, which flushes the file, and fails
// when packets were dropped: a lossy capture cannot be compared.
func (c *capture) stop() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		tlstest.KillGroup(c.cmd)
		<-c.exited
		return errors.New("tcpdump did not exit 5s after SIGINT")
	}
	if s := c.stderr.String(); !noDrops.MatchString(s) {
		return fmt.Errorf("tcpdump lost packets: %s", tlstest.Tail(s, 300))
	}
	return nil
}
