package wireguard

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHeldConn measures the server's memory per held connection: 1,000
// clients each complete a TLS handshake with the server's handler (as the
// proxy terminates TLS) and stay open, through the tunnel and over
// loopback TCP. The clients, and for the tunnel their WireGuard and
// netstack, run in a child process (this test binary, see TestMain), so
// what is measured is the server alone: Go heap and goroutine stacks after
// a GC, before and after the connections are up. Over loopback the
// kernel's socket buffers are not in these figures; through the tunnel the
// netstack's are, which is the point: that is what the user-space stack
// costs.
//
//	go test -run '^$' -bench HeldConn -benchtime 3x ./proxy/wireguard/
func BenchmarkHeldConn(b *testing.B) {
	const n = 1000
	cert, _ := selfSigned(b, "origin.test")
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	var held atomic.Int64
	hold := func(c net.Conn, _ netip.AddrPort, _ string) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.Write([]byte{1})
		tc.SetDeadline(time.Time{})
		held.Add(1)
		defer held.Add(-1)
		tc.Read(make([]byte, 1)) // until the client closes, or the server does
	}
	// measure runs b.N children; start readies the server for one and
	// returns what it is to hold and how to stop the server afterwards.
	measure := func(b *testing.B, start func() (heldSpec, func())) {
		b.ReportAllocs()
		var heap, stack int64
		for b.Loop() {
			spec, stop := start()
			heap0, stack0 := settledMem()
			child := startHeldClients(b, spec)
			for end := time.Now().Add(60 * time.Second); held.Load() < n; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(end) {
					b.Fatalf("%d of %d connections held after 60s", held.Load(), n)
				}
			}
			heap1, stack1 := settledMem()
			heap += heap1 - heap0
			stack += stack1 - stack0
			child.stop(b)
			stop()
			for held.Load() > 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		b.ReportMetric(float64(heap)/float64(b.N*n), "heap-B/conn")
		b.ReportMetric(float64(stack)/float64(b.N*n), "stack-B/conn")
	}
	b.Run("tunnel", func(b *testing.B) {
		st, err := OpenStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		d, _, err := st.Device("phone")
		if err != nil {
			b.Fatal(err)
		}
		// A server per child: the last child's connections may linger
		// in LAST-ACK (its stack went before their last ACK), and the
		// next child's stack would pick some of the same ports.
		measure(b, func() (heldSpec, func()) {
			srv, err := New(Config{ListenAddr: "127.0.0.1:0", ServerKey: st.ServerKey(), Devices: []Device{d}, HandleTCP: hold, MaxTCPConns: 2 * n})
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			conf, _ := WGQuick(d, st.ServerKey(), srv.Addr().String())
			return heldSpec{Conf: conf, Endpoint: srv.Addr().String(), Dst: farV4.String(), N: n, CA: caPEM}, func() { srv.Close() }
		})
	})
	b.Run("loopback", func(b *testing.B) {
		addr := loopbackServer(b, hold)
		measure(b, func() (heldSpec, func()) { return heldSpec{Dst: addr, N: n, CA: caPEM}, func() {} })
	})
}

// settledMem returns heap in use and goroutine stacks after a GC.
func settledMem() (heap, stack int64) {
	var m runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc), int64(m.StackInuse)
}

// heldSpec tells the child process what to hold: N TLS connections to
// Dst, through a WireGuard peer made from Conf when Conf is set.
type heldSpec struct {
	Conf, Endpoint, Dst, CA string
	N                       int
}

// heldEnv names the environment variable that makes this test binary a
// child holding connections (TestMain).
const heldEnv = "TLSRESUME_WG_HELD_CLIENTS"

type heldChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startHeldClients(b *testing.B, spec heldSpec) *heldChild {
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), heldEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatalf("the client process said %q (%v)", line, err)
	}
	return &heldChild{cmd: cmd, stdin: stdin}
}

// stop closes the child's stdin, which makes it close its connections
// and exit.
func (c *heldChild) stop(b *testing.B) {
	c.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.Errorf("client process: %v", err)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		b.Error("client process did not exit in 30s")
	}
}

// runHeldClients is the child: it holds spec.N connections, prints
// "ready", and exits when its stdin closes.
func runHeldClients(js string) error {
	var spec heldSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		return err
	}
	dial := func() (net.Conn, error) { return net.DialTimeout("tcp", spec.Dst, 10*time.Second) }
	if spec.Conf != "" {
		p, err := startPeer(spec.Conf, spec.Endpoint)
		if err != nil {
			return err
		}
		defer p.dev.Close()
		dst := netip.MustParseAddrPort(spec.Dst)
		dial = func() (net.Conn, error) { return p.dial(dst) }
	}
	roots, err := poolOf(spec.CA)
	if err != nil {
		return err
	}
	cfg := &tls.Config{ServerName: "origin.test", RootCAs: roots}
	conns := make([]net.Conn, spec.N)
	var wg sync.WaitGroup
	errs := make(chan error, spec.N)
	sem := make(chan struct{}, 16)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dial()
			if err != nil {
				errs <- err
				return
			}
			tc := tls.Client(c, cfg)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadFull(tc, make([]byte, 1)); err != nil {
				errs <- err
				return
			}
			conns[i] = tc
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("holding connections: %w", err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return nil
}
