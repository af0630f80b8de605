package dns

import (
	"net/netip"
	"sync"
	"time"
)

const (
	// ringSize is how many answers Answers keeps.
	ringSize = 4096
	// maxClients bounds the clients Recent remembers.
	maxClients = 4096
	// recentHorizon is how long Recent remembers a client when it must
	// make room.
	recentHorizon = 10 * time.Minute
	// maxAnswerText bounds Answer.Answer.
	maxAnswerText = 512
)

// Answer is one answer the server gave.
type Answer struct {
	Time   time.Time
	Client netip.Addr // the client's IP (IPv4-mapped addresses unmapped)
	Name   string     // the name asked for, lower case, without the trailing dot
	Type   string     // the query type: "A", "AAAA", "HTTPS", "TYPE65534"
	// Answer is the answer section's data, records separated by ", ",
	// each prefixed by its type when that differs from the query type
	// ("CNAME b.example., 192.0.2.1"); empty for an empty answer, or the
	// reason for a SERVFAIL of the server's own.
	Answer      string
	Intercepted bool   // answered by this server; false: forwarded upstream
	Rcode       string // "NOERROR", "NXDOMAIN", "SERVFAIL", …
}

// recent is the last intercepted name a client asked for.
type recent struct {
	name string
	at   time.Time
}

// journal keeps the answer ring and each client's last intercepted name.
type journal struct {
	mu      sync.Mutex
	ring    []Answer // ringSize long once full
	next    int      // where the next answer goes once the ring is full
	clients map[netip.Addr]recent
}

func newJournal() *journal {
	return &journal{clients: make(map[netip.Addr]recent)}
}

func (j *journal) add(a Answer) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.ring) < ringSize {
		j.ring = append(j.ring, a)
	} else {
		j.ring[j.next] = a
		j.next = (j.next + 1) % ringSize
	}
	if a.Intercepted && a.Rcode == "NOERROR" {
		j.remember(a.Client, a.Name, a.Time)
	}
}

// remember records name as client's last intercepted name, making room
// when maxClients are known: first by forgetting clients older than
// recentHorizon, else an arbitrary one.
func (j *journal) remember(client netip.Addr, name string, at time.Time) {
	if _, known := j.clients[client]; !known && len(j.clients) >= maxClients {
		for ip, r := range j.clients {
			if at.Sub(r.at) > recentHorizon {
				delete(j.clients, ip)
			}
		}
		for ip := range j.clients {
			if len(j.clients) < maxClients {
				break
			}
			delete(j.clients, ip)
		}
	}
	j.clients[client] = recent{name: name, at: at}
}

func (j *journal) recent(client netip.Addr, maxAge time.Duration, now time.Time) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.clients[client.Unmap()]
	if !ok || now.Sub(r.at) > maxAge {
		return "", false
	}
	return r.name, true
}

func (j *journal) answers() []Answer {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Answer, 0, len(j.ring))
	out = append(out, j.ring[j.next:]...)
	return append(out, j.ring[:j.next]...)
}
