package proxy

import (
	"sync"
	"time"
)

// maxMemory bounds each map of memory; past it, the map starts afresh
// (what is forgotten is at worst reported as first contact again).
const maxMemory = 1 << 16

// memory is what the proxy learned across connections: whether an origin
// issues tickets (to mirror it), which names it reached at other addresses,
// and which client programs got tickets from us (so a client that comes back
// with nothing is told apart from a first contact).
//
// Origins are keyed by upstream.Key, as the upstream session cache is: the
// verdict then speaks of the same origin the cache looked up.
type memory struct {
	mu      sync.Mutex
	origins map[string]originInfo   // by upstream.Key(name, address)
	names   map[string]int          // completed upstream connections by name and port, any address
	clients map[string]ticketIssues // by clientKey
	// askers are the origins (by upstream.Key without identity) that sent
	// a CertificateRequest on any upstream handshake: mirror mode asks
	// the client on every later full handshake, even when the upstream
	// leg resumed a session made without one and was not asked again.
	askers map[string]bool
	// answers are how each origin last answered each offer (answerKey),
	// which --mirror early shows a client before the origin answers it.
	answers map[string]answer
}

type originInfo struct {
	conns   int // completed upstream connections
	tickets int // tickets received over them
	open    int // upstream connections still open
}

func newMemory() *memory {
	return &memory{origins: map[string]originInfo{}, names: map[string]int{}, clients: map[string]ticketIssues{}, askers: map[string]bool{}, answers: map[string]answer{}}
}

// openOrigin returns what is known about an origin before this connection
// and counts the upstream connection that starts; closeOrigin or
// abandonOrigin ends it.
func (m *memory) openOrigin(key, name string) (originInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.origins) >= maxMemory {
		m.origins = map[string]originInfo{}
	}
	o := m.origins[key]
	before := o
	o.open++
	m.origins[key] = o
	return before, m.names[name] > 0
}

// issuesNoTickets: the origin completed connections and sent no ticket.
func (m *memory) issuesNoTickets(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	return o.conns > 0 && o.tickets == 0
}

// closeOrigin ends an upstream connection that completed, with the tickets
// it received.
func (m *memory) closeOrigin(key, name string, tickets int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	o.open = max(o.open-1, 0)
	o.conns++
	o.tickets += tickets
	m.origins[key] = o
	if len(m.names) >= maxMemory {
		m.names = map[string]int{}
	}
	m.names[name]++
}

// noteCertRequest remembers that the origin asked for a client certificate.
func (m *memory) noteCertRequest(origin string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.askers) >= maxMemory {
		m.askers = map[string]bool{}
	}
	m.askers[origin] = true
}

// asksForCert: the origin asked for a client certificate before.
func (m *memory) asksForCert(origin string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.askers[origin]
}

// abandonOrigin ends an upstream connection that never completed.
func (m *memory) abandonOrigin(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	o.open = max(o.open-1, 0)
	m.origins[key] = o
}

// clientTicket returns a connection of this client program to this host
// that got a ticket from us and began before start (an overlapping later
// connection's ticket was not the client's to offer), and, when connID got
// one, remembers it.
func (m *memory) clientTicket(key, connID string, start time.Time, got bool) (before string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.clients[key]
	switch {
	case t.last.id != "" && t.last.start.Before(start):
		before = t.last.id
	case t.first.id != "" && t.first.start.Before(start):
		before = t.first.id
	}
	if got {
		if len(m.clients) >= maxMemory {
			m.clients = map[string]ticketIssues{}
		}
		if t.first.id == "" {
			t.first = ticketIssue{connID, start}
		}
		t.last = ticketIssue{connID, start}
		m.clients[key] = t
	}
	return before
}

// ticketIssues are the first and the last connection of a client program
// that got a ticket.
type ticketIssues struct{ first, last ticketIssue }

type ticketIssue struct {
	id    string
	start time.Time
}
