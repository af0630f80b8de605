package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tlsresume/tlsresume/proxy"
)

// shownAddr is a listener's address as the user gave it, with the port it
// got: Go reports a listener on 0.0.0.0 as the dual-stack [::]:port, which
// is not what was asked.
func shownAddr(requested string, ln net.Listener) string {
	got := ln.Addr().String()
	host, _, err := net.SplitHostPort(requested)
	_, port, err2 := net.SplitHostPort(got)
	if err != nil || err2 != nil {
		return got
	}
	return net.JoinHostPort(host, port) // ":8080" stays ":8080"
}

// maxShownAddrs bounds the addresses the start-up line lists.
const maxShownAddrs = 4

// lanAddrs are the addresses other devices may reach this machine by: its
// interfaces' IPv4 addresses, and, when v6, their global IPv6 ones; not
// loopback or link-local.
func lanAddrs(v6 bool) []netip.Addr {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ia := range ifaddrs {
		p, err := netip.ParsePrefix(ia.String())
		if err != nil {
			continue
		}
		a := p.Addr().Unmap()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || !a.IsGlobalUnicast() || a.Is6() && !v6 {
			continue
		}
		if len(out) < maxShownAddrs {
			out = append(out, a)
		}
	}
	return out
}

// pointAt is the start-up line that says where to point a client's HTTP
// proxy setting: the listener's address, or, for one on every address,
// this machine's addresses a phone on the LAN would use (lan) and the
// loopback one.
func pointAt(requested string, ln net.Listener, lan []netip.Addr) string {
	shown := shownAddr(requested, ln)
	tail := "; get the CA at http://" + proxy.MagicHost + "/ through it (tlsresume ca show says how to trust it)."
	host, port, err := net.SplitHostPort(shown)
	a, perr := netip.ParseAddr(host)
	if host == "" { // :port, every address
		a, perr = netip.IPv6Unspecified(), nil
	}
	if err != nil || perr != nil || !a.IsUnspecified() {
		return "Point a client's HTTP proxy setting at " + shown + tail
	}
	p, _ := strconv.Atoi(port)
	var lanAddrs []string
	for _, l := range lan {
		lanAddrs = append(lanAddrs, netip.AddrPortFrom(l, uint16(p)).String())
	}
	here := net.JoinHostPort("127.0.0.1", port)
	if len(lanAddrs) == 0 {
		return fmt.Sprintf("Point a client's HTTP proxy setting at this machine's address on the LAN, port %s (on this machine: %s)%s", port, here, tail)
	}
	return fmt.Sprintf("Point a client's HTTP proxy setting at %s (on this machine: %s)%s", strings.Join(lanAddrs, " or "), here, tail)
}
