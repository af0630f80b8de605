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
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file drives real software for the end-to-end tests in
// realclients_test.go: finding binaries, running them bounded by a
// context in their own process group, and capturing loopback traffic.

// requireClientsEnv turns a missing binary from a skip into a failure; CI
// sets it to 1 (.ci/run installs the clients).
const requireClientsEnv = "TLSRESUME_REQUIRE_CLIENTS"

// needBinary returns the path of the named binary, or skips t (fails it
// when TLSRESUME_REQUIRE_CLIENTS=1).
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} { // nginx lives here, often off PATH
		if fi, err := os.Stat(dir + "/" + name); err == nil && fi.Mode()&0o111 != 0 {
			return dir + "/" + name
		}
	}
	unavailable(t, "%s not found: %v", name, err)
	return ""
}

// unavailable skips t for want of something on this machine, or fails it
// when TLSRESUME_REQUIRE_CLIENTS=1.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireClientsEnv) == "1" {
		t.Fatalf("%s (%s=1 requires it)", msg, requireClientsEnv)
	}
	t.Skip(msg)
}

// command is name bounded by ctx, in its own process group so that
// everything it spawns (chromium's zygote and renderers) is killed with it.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second // a grandchild may hold the pipes open
	return cmd
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// runTool runs name with stdin as input and returns its stdout and stderr.
func runTool(ctx context.Context, env []string, stdin, name string, args ...string) (string, string, error) {
	cmd := command(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	killGroup(cmd) // stragglers left in the group after a normal exit
	if err != nil {
		err = fmt.Errorf("running %s %s: %w (stderr: %s)", name, strings.Join(args, " "), err, tail(errb.String(), 600))
	}
	return out.String(), errb.String(), err
}

// startTool starts a long-running server; t's cleanup kills it.
func startTool(t *testing.T, ctx context.Context, name string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	out := &syncBuffer{}
	cmd := command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		killGroup(cmd)
		<-exited
	})
	return cmd, out
}

// freePort returns a loopback port that was free a moment ago, for
// servers that bind it themselves.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
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

// syncBuffer is a bytes.Buffer a process writes while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

var noDrops = regexp.MustCompile(`(?m)^0 packets dropped by kernel`)

// capture is tcpdump writing one port's loopback traffic to path.
type capture struct {
	path   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

// startCapture captures TCP port on lo into path and returns once packets
// are being written.
func startCapture(t *testing.T, ctx context.Context, port int, path string) *capture {
	t.Helper()
	tcpdump := needBinary(t, "tcpdump")
	// --immediate-mode: with TPACKET_V3 a SIGINT before the block timeout
	// loses the last block. -Z root: tcpdump otherwise drops to user tcpdump,
	// who cannot write into a root-owned t.TempDir. -B: immediate mode
	// spends a whole snapshot per ring slot, so give the ring room.
	c := &capture{path: path, stderr: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = command(ctx, tcpdump, "-i", "lo", "-n", "-s", "0", "-B", "32768", "-U", "--immediate-mode",
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
		msg := tail(c.stderr.String(), 400)
		if s := strings.ToLower(msg); strings.Contains(s, "permission") || strings.Contains(s, "not permitted") {
			unavailable(t, "tcpdump cannot capture on lo: %s", msg)
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
		killGroup(c.cmd)
		<-c.exited
		return errors.New("tcpdump did not exit 5s after SIGINT")
	}
	if s := c.stderr.String(); !noDrops.MatchString(s) {
		return fmt.Errorf("tcpdump lost packets: %s", tail(s, 300))
	}
	return nil
}
