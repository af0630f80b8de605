package proxy

import "sync"

// maxMemory bounds each map of memory; past it, the map starts afresh
// (what is forgotten is at worst reported as first contact again).
const maxMemory = 1 << 16

// memory is what the proxy learned across connections: whether an origin
// issues tickets (to mirror it), and which clients got tickets from us (so
// a client that comes back with nothing is told apart from a first contact).
type memory struct {
	mu      sync.Mutex
	origins map[string]originInfo
	clients map[string]bool
}

type originInfo struct {
	conns   int // completed upstream connections
	tickets int // tickets received over them
	open    int // upstream connections still open
}

func newMemory() *memory {
	return &memory{origins: map[string]originInfo{}, clients: map[string]bool{}}
}

// origin returns what is known about an origin before this connection.
func (m *memory) origin(key string) originInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.origins[key]
}

// issuesNoTickets: the origin completed connections and sent no ticket.
func (m *memory) issuesNoTickets(key string) bool {
	o := m.origin(key)
	return o.conns > 0 && o.tickets == 0
}

// openOrigin counts an upstream connection that starts; closeOrigin ends
// it with the tickets it received.
func (m *memory) openOrigin(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.origins) >= maxMemory {
		m.origins = map[string]originInfo{}
	}
	o := m.origins[key]
	o.open++
	m.origins[key] = o
}

func (m *memory) closeOrigin(key string, tickets int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	o.open = max(o.open-1, 0)
	o.conns++
	o.tickets += tickets
	m.origins[key] = o
}

func (m *memory) clientHadTicket(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clients[key]
}

func (m *memory) addClientTicket(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.clients) >= maxMemory {
		m.clients = map[string]bool{}
	}
	m.clients[key] = true
}

// abandonOrigin ends an upstream connection that never completed.
func (m *memory) abandonOrigin(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	o.open = max(o.open-1, 0)
	m.origins[key] = o
}
