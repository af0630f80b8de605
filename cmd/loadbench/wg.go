package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// wgDevice is the name of the WireGuard device the tlsresume+wg
// contender's clients are (tlsresume proxy --peer).
const wgDevice = "bench"

// startTLSResumeWG runs tlsresume as startTLSResume does, with WireGuard
// on a free loopback UDP port as well (--wireguard-local: the device may
// reach the origin on this machine's loopback), and returns a contender
// whose clients are one WireGuard device in this process: each connection
// goes through the tunnel straight to the origin's address, and the proxy
// takes it as a transparent one, with no CONNECT. The CONNECT listener is
// there but unused.
func startTLSResumeWG(ctx context.Context, bin, dir string, o *origin, extra ...string) (*contender, error) {
	wgAddr, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	// The tunnel's DNS is never asked (the clients dial the origin's
	// address), so it forwards nowhere rather than to /etc/resolv.conf's.
	extra = append(extra, "--wireguard", wgAddr, "--peer", wgDevice, "--wireguard-local", "--dns-upstream", "127.0.0.1:1")
	c, err := startTLSResume(ctx, nameTLSResumeWG, bin, dir, o, "", extra...)
	if err != nil {
		return nil, err
	}
	text, err := wireguardConfig(ctx, bin, filepath.Join(dir, "ca"), wgAddr)
	if err != nil {
		c.stop()
		return nil, err
	}
	if c.peer, err = wgpeer.Start(text, wgAddr); err != nil {
		c.stop()
		return nil, err
	}
	c.d.proxy, c.d.peer = "", c.peer
	if err := c.waitTunnel(ctx, 15*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// wireguardConfig runs `tlsresume wireguard config` for the contender's
// device, as a person does to get the text a phone installs.
func wireguardConfig(ctx context.Context, bin, caDir, endpoint string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "wireguard", "config", "--peer", wgDevice, "--ca-dir", caDir, "--endpoint", endpoint)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("tlsresume wireguard config: %w: %s", err, stderr)
	}
	return string(out), nil
}

// waitTunnel fetches through the tunnel until a request succeeds: the
// WireGuard handshake is done and the proxy serves the device. Its CPU
// counts as the contender's start.
func (c *contender) waitTunnel(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("%s exited before serving the tunnel (%v): %s", c.name, err, tail(c.stderr))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = c.d.getFresh(rctx, nil, "/small")
		cancel()
		if last == nil {
			c.upCPU = c.cpuSeconds()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: no request went through the WireGuard tunnel within %s (%v): %s", c.name, limit, last, tail(c.stderr))
}

// freeUDPPort finds a loopback UDP port nobody listens on, as freePort.
func freeUDPPort() (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free UDP port: %w", err)
	}
	defer pc.Close()
	return pc.LocalAddr().String(), nil
}
