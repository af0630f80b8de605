package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// Contender names, in the table's column order.
const (
	nameDirect    = "direct"
	nameTLSResume = "tlsresume"
	// nameTLSResumePage is tlsresume with its live view open in headless
	// Chromium for the whole run: the page follows every record.
	nameTLSResumePage = "tlsresume+page"
	// nameTLSResumePool is tlsresume with --upstream-reuse pool: client
	// connections share upstream connections per origin.
	nameTLSResumePool = "tlsresume+pool"
	// nameTLSResumeWG is tlsresume with --wireguard: the clients are a
	// WireGuard device in loadbench's process (a user-space netstack),
	// whose connections go through the tunnel straight to the origin's
	// address.
	nameTLSResumeWG = "tlsresume+wg"
	// nameBaseline is another tlsresume binary (-baseline), run like
	// tlsresume: two builds side by side in one run, alternating.
	nameBaseline = "baseline"
	nameMitm     = "mitmproxy"
	nameTunnel   = "tunnel" // opt-in: a blind CONNECT relay, loadbench -tunnel-serve
)

// contender is one way to reach the origin: directly, or through a proxy
// running as a subprocess.
type contender struct {
	name    string
	d       *dialer
	skipped string // why it was not measured; "" when it was

	cmd     *exec.Cmd
	exited  chan error
	browser *exec.Cmd    // tlsresume+page: the Chromium showing the live view
	peer    *wgpeer.Peer // tlsresume+wg: the WireGuard device its clients dial through
	dir     string       // its working files: CA, logs
	logFile string       // tlsresume's --log JSONL
	stderr  string       // the subprocess's stdout and stderr

	reps   []repResult
	proc   procStats // of the subprocess, read just before it is stopped
	ownCPU float64   // CPU seconds the subprocess used during its own phases
	upCPU  float64   // CPU seconds it used to start, until it accepted
}

// repResult is one contender's phases in one rep.
type repResult struct {
	Rep    int                    `json:"rep"`
	Phases map[string]phaseResult `json:"phases"`
}

// procStats are a subprocess's peak memory and CPU time.
type procStats struct {
	PeakRSSMB  float64 `json:"peak_rss_mb"`      // VmHWM
	RSSMB      float64 `json:"rss_mb,omitempty"` // VmRSS, when read
	CPUSeconds float64 `json:"cpu_seconds"`      // user + system, whole run
	// OwnCPUSeconds is the part used during its own phases; the rest was
	// used while it should have been idle (other contenders' phases, start).
	OwnCPUSeconds   float64 `json:"own_cpu_seconds"`
	StartCPUSeconds float64 `json:"start_cpu_seconds"` // until it accepted
	// BrowserCPUSeconds is what Chromium's processes (browser, renderer,
	// GPU, utility) used showing the live view (tlsresume+page).
	BrowserCPUSeconds float64 `json:"browser_cpu_seconds,omitempty"`
	Error             string  `json:"error,omitempty"`
}

// startTLSResume runs `tlsresume proxy` from bin on a free loopback port,
// trusting the origin's CA upstream, with its live view on another, and
// waits until it accepts. With chromium set, the view is opened in it for
// the whole run (tlsresume+page).
func startTLSResume(ctx context.Context, name, bin, dir string, o *origin, chromium string, extra ...string) (*contender, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	webAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &contender{name: name, dir: dir, logFile: filepath.Join(dir, "conns.jsonl")}
	caDir := filepath.Join(dir, "ca")
	err = c.start(bin, append([]string{"proxy", "--listen", addr, "--ca-dir", caDir, "--upstream-ca", o.caFile,
		"--log", c.logFile, "--grace", "1s", "--web", webAddr}, extra...)...)
	if err != nil {
		return nil, err
	}
	if chromium != "" {
		if err := c.waitReady(ctx, webAddr, 15*time.Second, nil); err != nil {
			c.stop()
			return nil, err
		}
		c.browser = exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+filepath.Join(dir, "chromium"), "http://"+webAddr+"/")
		if err := c.browser.Start(); err != nil {
			c.stop()
			return nil, fmt.Errorf("starting chromium on the live view: %w", err)
		}
	}
	roots, err := c.waitCA(ctx, addr, filepath.Join(caDir, "ca.pem"))
	if err != nil {
		c.stop()
		return nil, err
	}
	c.d = &dialer{proxy: addr, origin: o.addr, roots: roots}
	return c, nil
}

// waitCA waits until addr accepts and caFile holds the proxy's CA, and
// returns a pool trusting it. tlsresume binds its listeners before it
// creates anything (cmd/tlsresume/proxy.go, bindAll), so on a busy machine
// it accepts connections into the backlog before its CA is written.
func (c *contender) waitCA(ctx context.Context, addr, caFile string) (*x509.CertPool, error) {
	hasCA := func() bool { _, err := poolFromFile(caFile); return err == nil }
	if err := c.waitReady(ctx, addr, 15*time.Second, hasCA); err != nil {
		return nil, err
	}
	return poolFromFile(caFile)
}

// startMitm runs mitmdump from bin on a free loopback port, verifying the
// origin against its CA, and waits until it accepts and has written its CA.
func startMitm(ctx context.Context, bin, dir string, o *origin) (*contender, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	c := &contender{name: nameMitm, dir: dir}
	err = c.start(bin, "--listen-host", host, "--listen-port", port,
		"--set", "confdir="+dir, "--set", "ssl_verify_upstream_trusted_ca="+o.caFile, "-q")
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "mitmproxy-ca-cert.pem")
	hasCA := func() bool { _, err := os.Stat(caFile); return err == nil }
	if err := c.waitReady(ctx, addr, 30*time.Second, hasCA); err != nil {
		c.stop()
		return nil, err
	}
	roots, err := poolFromFile(caFile)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.d = &dialer{proxy: addr, origin: o.addr, roots: roots}
	return c, nil
}

// startTunnel re-runs loadbench as a blind CONNECT relay; the clients'
// TLS then ends at the origin itself.
func startTunnel(ctx context.Context, dir string, o *origin) (*contender, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding loadbench's own binary: %w", err)
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &contender{name: nameTunnel, dir: dir}
	if err := c.start(bin, "-tunnel-serve", addr); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, addr, 15*time.Second, nil); err != nil {
		c.stop()
		return nil, err
	}
	c.d = &dialer{proxy: addr, origin: o.addr, roots: o.roots}
	return c, nil
}

// start runs bin with its output in dir/output.log.
func (c *contender) start(bin string, args ...string) error {
	c.stderr = filepath.Join(c.dir, "output.log")
	out, err := os.Create(c.stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Dir = c.dir
	c.cmd.Stdout, c.cmd.Stderr = out, out
	if err := c.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s: %w", c.name, err)
	}
	c.exited = make(chan error, 1)
	go func() {
		c.exited <- c.cmd.Wait()
		out.Close()
	}()
	return nil
}

// waitReady dials addr until it accepts and ready (if any) says yes.
func (c *contender) waitReady(ctx context.Context, addr string, limit time.Duration, ready func() bool) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("%s exited before accepting (%v): %s", c.name, err, tail(c.stderr))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			if ready == nil || ready() {
				c.upCPU = c.cpuSeconds()
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not accept on %s within %s: %s", c.name, addr, limit, tail(c.stderr))
}

// stop reads the subprocess's peak RSS and CPU time, then ends it
// (SIGTERM, SIGKILL after 10 s) and waits for it.
func (c *contender) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.proc = readProc(c.cmd.Process.Pid)
	c.proc.OwnCPUSeconds = c.ownCPU
	c.proc.StartCPUSeconds = c.upCPU
	if b := c.browser; b != nil && b.Process != nil {
		c.proc.BrowserCPUSeconds = processesCPU(filepath.Join(c.dir, "chromium"))
		b.Process.Kill()
		b.Wait()
		c.browser = nil
	}
	if c.peer != nil {
		c.peer.Close()
		c.peer = nil
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

// cpuSeconds is the subprocess's CPU time so far; 0 for direct.
func (c *contender) cpuSeconds() float64 {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return readProc(c.cmd.Process.Pid).CPUSeconds
}

// readProc reads VmHWM from /proc/PID/status and utime+stime from
// /proc/PID/stat.
func readProc(pid int) procStats {
	var ps procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		ps.Error = err.Error()
		return ps
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && (f[0] == "VmHWM:" || f[0] == "VmRSS:") {
			kb, _ := strconv.ParseFloat(f[1], 64)
			if f[0] == "VmHWM:" {
				ps.PeakRSSMB = kb / 1024
			} else {
				ps.RSSMB = kb / 1024
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		ps.Error = err.Error()
		return ps
	}
	// Fields after the parenthesised command name start at field 3 (state);
	// utime and stime are fields 14 and 15 (proc(5)), in clock ticks.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) > 12 {
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		// USER_HZ is 100 on every Linux architecture Go supports (proc(5)).
		ps.CPUSeconds = (ut + st) / 100
	}
	return ps
}

// freePort finds a loopback port nobody listens on. Another process could
// take it before the contender binds it; waitReady then fails clearly.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func poolFromFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the proxy's CA: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the proxy's CA %s holds no PEM certificate", path)
	}
	return p, nil
}

// buildTLSResume builds ./cmd/tlsresume into dir, from the module the
// current directory is in.
func buildTLSResume(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "tlsresume-bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/tlsresume/tlsresume/cmd/tlsresume")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build tlsresume (run loadbench from the repository, or pass -tlsresume): %v: %s", err, out)
	}
	return bin, nil
}

// tail is the end of a subprocess's output, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "…" + s[len(s)-600:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// version runs `bin args` and returns its first output line.
func version(bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return err.Error()
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return first
}

// processesCPU sums the CPU time of the processes whose command line
// names marker (Chromium's user data directory: every process of that
// browser has it).
func processesCPU(marker string) float64 {
	ents, _ := os.ReadDir("/proc")
	var sum float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmd), marker) {
			sum += readProc(pid).CPUSeconds
		}
	}
	return sum
}
