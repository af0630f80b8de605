package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigFileLimits: --config refuses at once, saying why, what is not
// a regular file (/dev/zero used to be read until the OOM killer came; a
// FIFO with no writer blocked the open for ever) and a file over the size
// cap. Each case runs tlsresume in a child process (this test binary) that
// gets SIGTERM, then SIGKILL, after a deadline, so that a regression fails
// the test instead of eating the machine's memory or hanging the run.
func TestConfigFileLimits(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	pad := "# " + strings.Repeat("x", 77) + "\n"
	if err := os.WriteFile(big, []byte("listen: 127.0.0.1:0\n"+strings.Repeat(pad, maxConfigSize/len(pad)+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	atCap := filepath.Join(dir, "at-cap.yaml")
	body := "listen: 127.0.0.1:0\nweb: \"off\"\nticket-rotation: 1s\n" // a refusal after the file is read
	if err := os.WriteFile(atCap, []byte(body+strings.Repeat("#", maxConfigSize-len(body)-1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"dev-zero", "/dev/zero", "--config /dev/zero: not a regular file (a character device)"},
		{"fifo", fifo, "--config " + fifo + ": not a regular file (a named pipe)"},
		{"over-cap", big, "--config " + big + ": larger than 1 MiB"},
		{"at-cap", atCap, "--ticket-rotation 1s: want at least 1m0s"}, // read whole, then judged
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, stderr := runConfigChild(t, tc.path)
			if code != 2 || !strings.Contains(stderr, tc.want) || time.Since(start) > 5*time.Second {
				t.Errorf("exit %d after %v, stderr %q; want exit 2 at once and %q", code, time.Since(start).Round(time.Millisecond), stderr, tc.want)
			}
		})
	}
}

// runConfigChild runs "tlsresume proxy --config path" in a child process,
// stopped with SIGTERM after 5 s and SIGKILL 2 s later, and returns its exit
// code and the start of its stderr.
func runConfigChild(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConfigFileChild$")
	cmd.Env = append(os.Environ(), "TLSRESUME_CONFIG_CHILD=1", "TLSRESUME_CONFIG_PATH="+path, "TLSRESUME_HOME="+t.TempDir())
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Logf("child: %v", err)
	}
	s := stderr.String()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return code, s
}

// TestConfigFileChild is the child of TestConfigFileLimits: it runs the
// proxy with the --config it is given and exits with its code.
func TestConfigFileChild(t *testing.T) {
	if os.Getenv("TLSRESUME_CONFIG_CHILD") != "1" {
		t.Skip("the child process of TestConfigFileLimits")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // as main does
	defer stop()
	os.Exit(run(ctx, []string{"proxy", "--listen", "127.0.0.1:0", "--web", "off", "--config", os.Getenv("TLSRESUME_CONFIG_PATH")}, os.Stdout, os.Stderr))
}
