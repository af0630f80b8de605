package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"testing"
	"time"
)

// TestTLSOriginSpeaksFirst: an origin that speaks first inside TLS (an
// IMAPS or SMTPS greeting) with no ALPN, its greeting 3,000 bytes (longer
// than what the ticket sip reads at once), reaches a client that waits
// for it: the whole greeting in order, then an echo of what the client
// sends. The sip read part of it while the proxy waited for the client to
// say whether it speaks HTTP; crypto/tls kept the rest for the relay.
func TestTLSOriginSpeaksFirst(t *testing.T) {
	greeting := bytes.Repeat([]byte("* OK ready 0123456789\r\n"), 130) // 2,990 bytes
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{originCert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write(greeting)
				io.Copy(c, c)
			}()
		}
	}()
	e := startProxy(t, tempDir(t), nil)
	tc := tls.Client(e.connect(ln.Addr().String()), &tls.Config{ServerName: "origin.test", RootCAs: e.caPool()})
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(greeting))
	if _, err := io.ReadFull(tc, got); err != nil {
		t.Fatalf("reading the greeting through the proxy: %v", err)
	}
	if !bytes.Equal(got, greeting) {
		t.Fatalf("the greeting arrived changed: %q…", got[:64])
	}
	io.WriteString(tc, "a1 LOGOUT\r\n")
	echo := make([]byte, len("a1 LOGOUT\r\n"))
	if _, err := io.ReadFull(tc, echo); err != nil || string(echo) != "a1 LOGOUT\r\n" {
		t.Fatalf("echo %q, %v", echo, err)
	}
}
