package inspect_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// helloCatcher listens on 127.0.0.1, reads one ClientHello per connection,
// hands its JA4 over and hangs up: the client's handshake fails, which is
// all right, as only its hello is wanted.
type helloCatcher struct {
	port int
	ja4s chan string
}

func startHelloCatcher(t *testing.T) *helloCatcher {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c := &helloCatcher{port: ln.Addr().(*net.TCPAddr).Port, ja4s: make(chan string, 16)}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.read(conn)
		}
	}()
	return c
}

func (c *helloCatcher) read(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg, _, err := inspect.ReadClientHello(conn)
	if err != nil {
		return
	}
	var h inspect.ClientHello
	if h.Unmarshal(msg) != nil {
		return
	}
	select {
	case c.ja4s <- inspect.Fingerprint(&h, 't').JA4:
	default:
	}
}

// next waits for the next hello's JA4.
func (c *helloCatcher) next(ctx context.Context) (string, error) {
	select {
	case ja4 := <-c.ja4s:
		return ja4, nil
	case <-ctx.Done():
		return "", fmt.Errorf("no ClientHello arrived: %w", ctx.Err())
	}
}

// TestKnownStacksRealClients: each client on this machine, in its default
// configuration, sends a hello that KnownStacks names as its stack. When a
// client's release changes its cipher list, this fails and names the new
// JA4, for a new entry.
func TestKnownStacksRealClients(t *testing.T) {
	profiles := t.TempDir()
	for _, tt := range []struct {
		name, bin, want string
		run             func(ctx context.Context, bin string, port int) error
	}{
		{"openssl s_client", "openssl", "curl/OpenSSL 3.0", func(ctx context.Context, bin string, port int) error {
			_, _, err := tlstest.Run(ctx, "", bin, "s_client", "-connect", "127.0.0.1:"+strconv.Itoa(port), "-servername", "localhost")
			return err
		}},
		{"curl", "curl", "curl/OpenSSL 3.0", func(ctx context.Context, bin string, port int) error {
			_, _, err := tlstest.Run(ctx, "", bin, "-sk", "--max-time", "10", "https://localhost:"+strconv.Itoa(port)+"/")
			return err
		}},
		{"python urllib", "python3", "Python ssl/OpenSSL", func(ctx context.Context, bin string, port int) error {
			_, _, err := tlstest.Run(ctx, "", bin, "-c", "import sys, urllib.request\nurllib.request.urlopen(sys.argv[1], timeout=10)", "https://localhost:"+strconv.Itoa(port)+"/")
			return err
		}},
		{"gnutls-cli", "gnutls-cli", "gnutls-cli/GnuTLS", func(ctx context.Context, bin string, port int) error {
			_, _, err := tlstest.Run(ctx, "", bin, "--insecure", "-p", strconv.Itoa(port), "localhost")
			return err
		}},
		{"go", "", "Go crypto/tls", func(ctx context.Context, _ string, port int) error {
			d := tls.Dialer{Config: &tls.Config{ServerName: "localhost"}}
			c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err == nil {
				c.Close()
			}
			return err
		}},
		{"chromium", "chromium", "Chromium", func(ctx context.Context, bin string, port int) error {
			_, _, err := tlstest.DumpDOM(ctx, bin, tlstest.ChromiumPage{URL: "https://localhost:" + strconv.Itoa(port) + "/", Dir: profiles})
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin := ""
			if tt.bin != "" {
				bin = tlstest.Need(t, tt.bin)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			c := startHelloCatcher(t)
			ran := make(chan struct{})
			go func() {
				defer close(ran)
				tt.run(ctx, bin, c.port) // fails once the catcher hangs up
			}()
			ja4, err := c.next(ctx)
			cancel()
			<-ran
			if err != nil {
				t.Fatal(err)
			}
			s, ok := inspect.LikelyStack(ja4)
			if !ok || s.Name != tt.want {
				t.Errorf("%s sent JA4 %s: LikelyStack says %q (matched %v), want %q", tt.name, ja4, s.Name, ok, tt.want)
			}
			if s.Apple {
				t.Errorf("%s taken for Apple's stack", tt.name)
			}
		})
	}
}
