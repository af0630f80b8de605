package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestTicketBeforeHello: a ticket counts for client_offered_nothing from
// the moment tlsresume issues it, and only for a connection whose hello
// arrived after that. A page load's first connections open in parallel
// before any ticket exists: each is a first contact, though they finish
// one after another. A later connection that offers nothing while the
// connection that got a ticket is still open offered nothing all the same.
func TestTicketBeforeHello(t *testing.T) {
	const wave = 6
	// The origin holds every upstream handshake until the whole wave's
	// hellos reached tlsresume (each upstream handshake starts only after
	// its client's hello was read), so no ticket exists before any of them.
	var mu sync.Mutex
	arrived, all := 0, make(chan struct{})
	o := startOrigin(t, func(c *tls.Config) {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			if arrived++; arrived == wave {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(5 * time.Second):
			}
			return nil, nil
		}
	})
	e := startProxy(t, tempDir(t), nil)
	// These clients ask for tickets and never offer one (forgetfulCache).
	cfg := &tls.Config{ServerName: "origin.test", RootCAs: e.caPool(), NextProtos: []string{"http/1.1"}, ClientSessionCache: forgetfulCache{}}
	open := func(cfg *tls.Config) *tls.Conn {
		tc := tls.Client(e.connect(o.addr), cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Error(err)
			return nil
		}
		return tc
	}
	get := func(tc *tls.Conn) *inspect.ConnRecord {
		t.Helper()
		fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", tc.ConnectionState().ServerName)
		io.ReadAll(tc)
		tc.Close()
		return e.next()
	}

	conns := make([]*tls.Conn, wave)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); conns[i] = open(cfg) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, tc := range conns { // finished one after another
		r := get(tc)
		if r.ClientLeg.TicketsSent == 0 {
			t.Fatalf("%s: tlsresume issued no ticket: %+v %+v %s", r.ID, r.ClientLeg, r.UpstreamLeg, r.Verdict.Text)
		}
		if r.Verdict.Client != inspect.CodeClientFirstContact {
			t.Errorf("%s, of the parallel first wave: client verdict %s (%s), want %s", r.ID, r.Verdict.Client, r.Verdict.Text, inspect.CodeClientFirstContact)
		}
	}
	if r := get(open(cfg)); r.Verdict.Client != inspect.CodeClientOfferedNothing {
		t.Errorf("%s, after the wave: client verdict %s (%s), want %s", r.ID, r.Verdict.Client, r.Verdict.Text, inspect.CodeClientOfferedNothing)
	}

	// Another host name (another client key): the connection that got the
	// ticket stays open while the next one offers nothing.
	other := cfg.Clone()
	other.ServerName = "localhost"
	held := open(other)
	defer held.Close()
	r := get(open(other))
	if r.Verdict.Client != inspect.CodeClientOfferedNothing {
		t.Errorf("%s, while the connection that got a ticket is open: client verdict %s (%s), want %s",
			r.ID, r.Verdict.Client, r.Verdict.Text, inspect.CodeClientOfferedNothing)
	}
}
