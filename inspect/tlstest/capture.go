package tlstest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Capture is a running tcpdump (or dumpcap) writing one port's loopback
// traffic to Path.
type Capture struct {
	Path   string
	port   int
	udp    bool // UDP (QUIC) instead of TCP
	tool   string
	cmd    *exec.Cmd
	stderr Buffer
	exited chan struct{}
}

// StartCapture starts capturing TCP traffic to or from port on lo into path
// and returns once packets are being written: a server must be listening on
// port already (see Sync). It prefers tcpdump and falls back to dumpcap;
// without either, or without the permission to capture, it ends t with
// Unavailable.
func StartCapture(ctx context.Context, t testing.TB, port int, path string) *Capture {
	t.Helper()
	return startCapture(ctx, t, port, path, false)
}

// StartUDPCapture is StartCapture for UDP traffic (QUIC): a server must be
// reading the UDP port already; markers are datagrams it ignores.
func StartUDPCapture(ctx context.Context, t testing.TB, port int, path string) *Capture {
	t.Helper()
	return startCapture(ctx, t, port, path, true)
}

func startCapture(ctx context.Context, t testing.TB, port int, path string, udp bool) *Capture {
	t.Helper()
	filter := fmt.Sprintf("tcp port %d", port)
	if udp {
		filter = fmt.Sprintf("udp port %d", port)
	}
	c := &Capture{Path: path, port: port, udp: udp, exited: make(chan struct{})}
	var args []string
	if p, err := exec.LookPath("tcpdump"); err == nil {
		// --immediate-mode: on Linux, TPACKET_V3 hands packets over a block
		// at a time, and a SIGINT before the block times out loses it (seen
		// here: "0 packets captured, 38 packets received by filter").
		// -B: in immediate mode each ring slot holds a whole snapshot (256
		// KiB with -s 0), so the default 2 MiB buffer is 8 packets, and a
		// tcpdump starved of CPU by a browser dropped 20 of them here; 32 MiB
		// holds 128.
		c.tool = p
		args = []string{"-i", "lo", "-n", "-s", "0", "-B", "32768", "-U", "--immediate-mode", "-w", path, filter}
	} else if p, err := exec.LookPath("dumpcap"); err == nil {
		c.tool = p
		args = []string{"-i", "lo", "-q", "-B", "32", "-f", filter, "-w", path}
	} else {
		Unavailable(t, "neither tcpdump nor dumpcap found")
	}
	c.cmd = Command(ctx, c.tool, args...)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.tool, err)
	}
	go func() {
		c.cmd.Wait() // the exit status after SIGINT says nothing; stderr does
		close(c.exited)
	}()
	t.Cleanup(func() { c.stop(time.Second) })

	listening := func() bool {
		s := c.stderr.String()
		return strings.Contains(s, "listening on") || strings.Contains(s, "Capturing on")
	}
	err := waitFor(ctx, c.exited, listening)
	if err == nil {
		err = c.Sync(ctx)
	}
	if err != nil {
		msg := Tail(c.stderr.String(), 400)
		if isPermission(msg) {
			Unavailable(t, "%s cannot capture on lo: %s", c.tool, msg)
		}
		t.Fatalf("%s did not start capturing: %v: %s", c.tool, err, msg)
	}
	return c
}

// Sync opens a connection to the captured port, closes it, and waits until
// the capture file holds its end. The tool writes packets in the order the
// kernel queued them, so everything sent before is in the file too. This
// replaces sleeping: a tcpdump starved of CPU on a busy machine had written
// nothing 100ms after the clients were done, and SIGINT then loses what is
// still queued. A new marker goes out every half second, for a tool that
// says it is capturing before it is (dumpcap missed a first marker here).
// Markers carry no TLS; readers skip them.
func (c *Capture) Sync(ctx context.Context) error {
	var markers []int
	for {
		var d net.Dialer
		network := "tcp"
		if c.udp {
			network = "udp"
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)))
		if err != nil {
			return fmt.Errorf("marker connection: %w", err)
		}
		if c.udp {
			// Not QUIC: a short datagram without the long-header bit,
			// which a QUIC server drops and readers skip.
			conn.Write([]byte("tlsresume capture marker"))
			markers = append(markers, conn.LocalAddr().(*net.UDPAddr).Port)
		} else {
			markers = append(markers, conn.LocalAddr().(*net.TCPAddr).Port)
		}
		conn.Close()
		wait, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err = waitFor(wait, c.exited, func() bool { return c.holdsEnd(markers) })
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil || err == errExited:
			return fmt.Errorf("waiting for a marker connection in the capture: %w", err)
		}
	}
}

// holdsEnd reports whether the capture so far has the end of a marker: a
// FIN or RST of a connection from one of the ports, or a UDP datagram from
// one of them.
func (c *Capture) holdsEnd(ports []int) bool {
	found := false
	eachPacket(c.Path, func(p packet) error {
		switch {
		case p.udp && slices.Contains(ports, int(p.src.Port())),
			!p.udp && (p.fin || p.rst) && (slices.Contains(ports, int(p.src.Port())) || slices.Contains(ports, int(p.dst.Port()))):
			found = true
			return errStop
		}
		return nil
	})
	return found
}

// Stop waits until the capture holds everything sent so far (Sync), then
// ends it with SIGINT, which makes the tool flush and close the file, and
// waits for it to exit. A capture that lost bytes of a connection is an
// error: it cannot be compared field by field. Kernel drops alone are not:
// on a busy machine tcpdump reported hundreds while the filter was being
// installed, more packets than the port ever carried.
func (c *Capture) Stop(ctx context.Context) error {
	syncErr := c.Sync(ctx)
	if err := c.stop(5 * time.Second); err != nil {
		return fmt.Errorf("stopping %s: %w (stderr: %s)", c.tool, err, Tail(c.stderr.String(), 400))
	}
	if syncErr != nil {
		return fmt.Errorf("%s: %w (stderr: %s)", c.tool, syncErr, Tail(c.stderr.String(), 400))
	}
	if n := dropped(c.stderr.String()); n > 0 {
		if gaps, err := holesIn(c.Path); err != nil || gaps > 0 {
			return fmt.Errorf("%s dropped %d packets and the capture has %d holes (%v): %s",
				c.tool, n, gaps, err, Tail(c.stderr.String(), 400))
		}
	}
	return nil
}

var (
	tcpdumpDropped = regexp.MustCompile(`(\d+) packets? dropped by kernel`)
	dumpcapDropped = regexp.MustCompile(`received/dropped on interface .*: \d+/(\d+)`)
)

// dropped returns the packets the kernel dropped, from the statistics
// tcpdump or dumpcap print on exit; -1 when there are none to read.
func dropped(stderr string) int {
	for _, re := range []*regexp.Regexp{tcpdumpDropped, dumpcapDropped} {
		if m := re.FindStringSubmatch(stderr); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return -1
}

func (c *Capture) stop(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		return nil // exit status after SIGINT is not meaningful
	case <-time.After(grace):
		KillGroup(c.cmd)
		<-c.exited
		return fmt.Errorf("no exit %v after SIGINT", grace)
	}
}

func isPermission(s string) bool {
	s = strings.ToLower(s)
	return strings.Contains(s, "permission") || strings.Contains(s, "not permitted")
}
