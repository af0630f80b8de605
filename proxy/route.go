package proxy

import (
	"errors"
	"net"
	"net/netip"

	"github.com/tlsresume/tlsresume/inspect"
)

// route is the path's second step: where the connection goes, and the
// record of what the client offered, published as the connection's open
// event. A connection that reached tlsresume by DNS (the SNI listener)
// goes where its SNI says, or, without one, to the name its client last
// looked up; every other source named its destination already. A
// connection with nowhere to go is noted (c.routeErr): decide refuses it,
// with its offer recorded.
func (c *conn) route() {
	if c.notTLS != nil {
		c.open()
		return
	}
	if c.rec.Target == "" {
		c.routeErr = c.routeBySNI()
	}
	// A session ID counts as an attempt when this origin issued it earlier
	// in this run (seen when a connection to it was passed through).
	h := &c.hello
	issued := c.s.learned.sessionIDs.Has(c.dialAddr(), h.SessionID)
	c.rec.ClientHello = inspect.NewClientHelloRecord(h, inspect.AttemptOf(h, issued), inspect.Fingerprint(h, inspect.TransportTCP))
	c.open()
}

// routeBySNI sets the target of a connection that arrived by DNS: the SNI,
// or the name its client last asked tlsresume's DNS server for, port 443.
func (c *conn) routeBySNI() error {
	name := c.rec.SNI
	if name == "" && c.s.cfg.RecentName != nil {
		if ap, err := netip.ParseAddrPort(c.rec.ClientAddr); err == nil {
			name, _ = c.s.cfg.RecentName(ap.Addr().Unmap())
		}
	}
	if name == "" {
		return errors.New("no SNI, and no recent DNS answer for this client: nowhere to route")
	}
	if isMagic(name) {
		return errors.New("the magic host is served over the CONNECT and HTTP listeners only")
	}
	c.rec.Target = net.JoinHostPort(name, "443")
	c.rec.ServerAddr = c.rec.Target
	return nil
}
