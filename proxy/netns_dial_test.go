//go:build linux

package proxy

import (
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// nsDialer opens connections from inside a network namespace: a goroutine
// locked to its own thread enters the namespace (setns(2) is per thread)
// and creates every socket there; a socket stays in the namespace it was
// created in whichever thread uses it later (network_namespaces(7)).
type nsDialer struct {
	reqs chan nsDialReq
}

type nsDialReq struct {
	network, addr string
	reply         chan nsDialRes
}

type nsDialRes struct {
	c   net.Conn
	err error
}

func newNSDialer(ns string) (*nsDialer, error) {
	d := &nsDialer{reqs: make(chan nsDialReq)}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, the runtime ends
		// its thread instead of reusing it in the wrong namespace
		// (runtime.LockOSThread).
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + ns)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		ready <- err
		if err != nil {
			return
		}
		for r := range d.reqs {
			// An IP literal is dialled serially on this goroutine, so
			// the socket is created on this thread (net/dial.go).
			c, err := net.DialTimeout(r.network, r.addr, 5*time.Second)
			r.reply <- nsDialRes{c, err}
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return d, nil
}

// Dial connects to addr, an IP literal and port, from the namespace.
func (d *nsDialer) Dial(network, addr string) (net.Conn, error) {
	r := nsDialReq{network: network, addr: addr, reply: make(chan nsDialRes, 1)}
	d.reqs <- r
	res := <-r.reply
	return res.c, res.err
}

func (d *nsDialer) close() { close(d.reqs) }
