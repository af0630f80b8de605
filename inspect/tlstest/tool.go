package tlstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns a missing binary or
// missing capture permission from a skip into a failure: CI sets it to 1.
const RequireEnv = "TLSRESUME_REQUIRE_CLIENTS"

// Unavailable ends t because something it needs is not on this machine: a
// skip, or a failure when RequireEnv is 1. It must be called from the test's
// own goroutine.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s (%s=1)", msg, RequireEnv)
	}
	t.Skip(msg)
}

// Need returns the path of the named binary, or ends t with Unavailable.
// Besides $PATH it looks in /usr/sbin and /sbin, where nginx, ip and
// iptables live, often off a user's PATH.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	Unavailable(t, "%s not found: %v", name, err)
	return ""
}

// Command returns a command bounded by ctx that runs in its own process
// group: when ctx ends, the whole group is killed, so helpers a client
// spawns (chromium's zygote, renderers) go with it.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return KillGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second // pipes held by a stray grandchild
	return cmd
}

// KillGroup kills the process group of a command started by Command. Call
// it only while the command has not been waited for: once the leader is
// reaped and its group empty, the group ID may be reused.
func KillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Run runs name under ctx with stdin as its input and returns what it
// wrote to stdout and stderr. An error says how it ended.
func Run(ctx context.Context, stdin, name string, args ...string) (stdout, stderr string, err error) {
	return run(ctx, nil, stdin, name, args...)
}

// run is Run with env added to the environment.
func run(ctx context.Context, env []string, stdin, name string, args ...string) (stdout, stderr string, err error) {
	cmd := Command(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err = cmd.Run(); err != nil {
		err = fmt.Errorf("running %s: %w (stderr: %s)", name, err, Tail(errb.String(), 600))
	}
	return out.String(), errb.String(), err
}

// RunUntil runs name under ctx with stdin written and then held open until
// done, polled on what the command has printed so far, holds; then it
// closes stdin and waits for the exit. It serves clients that quit at the
// end of their input but must first receive something that comes late,
// such as TLS 1.3 tickets, sent after the handshake.
func RunUntil(ctx context.Context, stdin string, done func(stdout string) bool, name string, args ...string) (string, error) {
	cmd := Command(ctx, name, args...)
	var out, errb Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", name, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	io.WriteString(in, stdin)
	condErr := waitFor(ctx, exited, func() bool { return done(out.String()) })
	in.Close()
	<-exited
	switch {
	case condErr != nil && condErr != errExited:
		return out.String(), fmt.Errorf("running %s: %w (stdout: %s; stderr: %s)", name, condErr, Tail(out.String(), 300), Tail(errb.String(), 300))
	case waitErr != nil:
		return out.String(), fmt.Errorf("running %s: %w (stderr: %s)", name, waitErr, Tail(errb.String(), 600))
	}
	return out.String(), nil
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// servers that bind the port themselves.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: the
// output of a process that runs in the background, or a log written by
// several goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls cond every 20ms until it holds, ctx ends or exited closes.
func waitFor(ctx context.Context, exited <-chan struct{}, cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errExited
		case <-tick.C:
		}
	}
	return nil
}

var errExited = errors.New("tlstest: process exited")

// Tail returns the last n bytes of s, trimmed, marked with "…" when cut:
// the end of a tool's output, for an error message.
func Tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
