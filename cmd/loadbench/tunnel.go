package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// serveTunnel is the "tunnel" contender: loadbench re-run as a blind HTTP
// CONNECT relay (no TLS interception), the floor any proxy in a separate
// process pays for the extra hop. It accepts on addr until ctx is done.
func serveTunnel(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("tunnel: %w", err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tunnel: %w", err)
		}
		wg.Go(func() { relayConnect(c) })
	}
}

// relayConnect answers one CONNECT to a loopback target and copies bytes
// both ways until both sides are done.
func relayConnect(c net.Conn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	ap, err := netip.ParseAddrPort(req.Host)
	if req.Method != http.MethodConnect || err != nil || !ap.Addr().IsLoopback() {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.DialTimeout("tcp", req.Host, requestTimeout)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { copyClose(up, br) })
	copyClose(c, up)
	wg.Wait()
}

// copyClose copies src to dst, then half-closes dst.
func copyClose(dst net.Conn, src io.Reader) {
	io.Copy(dst, src)
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}
