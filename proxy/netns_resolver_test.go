//go:build linux

package proxy

import (
	"net"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// nsZone is what the test's upstream resolver knows: origin.test is the
// origin namespace's s_server; the MX is there to be forwarded unchanged.
var nsZone = []string{
	"origin.test. 300 IN A 10.233.2.2",
	"origin.test. 300 IN MX 10 mail.origin.test.",
}

// startNSResolver runs the upstream resolver of TestNetnsDNS on loopback
// UDP and TCP (one port), answering nsZone and NXDOMAIN for the rest.
func startNSResolver(tb testing.TB) string {
	tb.Helper()
	records := map[string][]mdns.RR{}
	for _, s := range nsZone {
		rr, err := mdns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		key := strings.ToLower(rr.Header().Name) + "/" + mdns.Type(rr.Header().Rrtype).String()
		records[key] = append(records[key], rr)
	}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			name := strings.ToLower(q.Name)
			m.Answer = records[name+"/"+mdns.Type(q.Qtype).String()]
			if name != "origin.test." {
				m.Rcode = mdns.RcodeNameError
			}
		}
		w.WriteMsg(m)
	})
	// One port for UDP and TCP: a free UDP port may be taken for TCP (by
	// another test's connection), so try a few.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 9 {
				tb.Fatal(err)
			}
		}
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		ready, done := make(chan struct{}), make(chan error, 1)
		srv.NotifyStartedFunc = func() { close(ready) }
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-ready:
		case err := <-done:
			tb.Fatalf("test resolver: %v", err)
		}
		tb.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return pc.LocalAddr().String()
}
