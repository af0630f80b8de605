package dns

import (
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// namesPerClient bounds the addresses a forwarder remembers for one
	// client; the one learned longest ago goes first. A phone opening its
	// apps looks up a few hundred names.
	namesPerClient = 1024
	// maxNameClients bounds the clients it remembers addresses for (a
	// WireGuard tunnel has at most 253 devices).
	maxNameClients = 256
)

// names is a forwarder's memory: for each client, the name it looked up
// whose answer held each address. The name is the question's, whatever
// CNAMEs led to the address: the name the client meant, which it also
// sends as SNI.
type names struct {
	mu      sync.Mutex
	clients map[netip.Addr]*clientNames
}

// clientNames is one client's addresses, in a ring in the order learned.
type clientNames struct {
	byAddr map[netip.Addr]string
	ring   []netip.Addr // namesPerClient long once full
	next   int          // where the next new address goes once full
	seen   time.Time    // when the client last learned a name
}

func newNames() *names { return &names{clients: map[netip.Addr]*clientNames{}} }

// learn remembers name for every A and AAAA address in rrs answered to
// client.
func (n *names) learn(client netip.Addr, name string, rrs []dns.RR, now time.Time) {
	var addrs []netip.Addr
	for _, rr := range rrs {
		var ip []byte
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A
		case *dns.AAAA:
			ip = rr.AAAA
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.client(client, now)
	for _, a := range addrs {
		c.add(a, name)
	}
}

// client returns client's memory, making room for a new one by forgetting
// the client that learned a name longest ago.
func (n *names) client(client netip.Addr, now time.Time) *clientNames {
	c, ok := n.clients[client]
	if !ok {
		if len(n.clients) >= maxNameClients {
			var oldest netip.Addr
			for ip, o := range n.clients {
				if !oldest.IsValid() || o.seen.Before(n.clients[oldest].seen) {
					oldest = ip
				}
			}
			delete(n.clients, oldest)
		}
		c = &clientNames{byAddr: map[netip.Addr]string{}}
		n.clients[client] = c
	}
	c.seen = now
	return c
}

func (c *clientNames) add(a netip.Addr, name string) {
	if _, known := c.byAddr[a]; known {
		c.byAddr[a] = name // the latest lookup wins; its place in the ring stays
		return
	}
	if len(c.ring) < namesPerClient {
		c.ring = append(c.ring, a)
	} else {
		delete(c.byAddr, c.ring[c.next])
		c.ring[c.next] = a
		c.next = (c.next + 1) % namesPerClient
	}
	c.byAddr[a] = name
}

func (n *names) lookup(client, addr netip.Addr) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.clients[client.Unmap()]
	if !ok {
		return "", false
	}
	name, ok := c.byAddr[addr.Unmap()]
	return name, ok
}

// NameOf returns the name the client at client last looked up, through a
// forwarder (NewForwarder), whose answer held addr: what a connection from
// client to addr meant to reach. A Server made by New remembers none.
func (s *Server) NameOf(client, addr netip.Addr) (string, bool) {
	if s.names == nil {
		return "", false
	}
	return s.names.lookup(client, addr)
}
