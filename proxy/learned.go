package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// maxMemory bounds each map of learned; past it, the map starts afresh
// (what is forgotten is at worst reported as first contact again).
const maxMemory = 1 << 16

// learned is everything the proxy learns across connections, in one place:
// of origins, whether each issues tickets (to mirror it), which names were
// reached at other addresses, which ask for client certificates, how each
// answered each offer, and which session IDs each issued; of clients,
// which programs got tickets from tlsresume (so a client that comes back
// with nothing is told apart from a first contact) and which
// --auto-passthrough passes through.
//
// Origins are keyed by upstream.Key, as the upstream session cache is: the
// verdict then speaks of the same origin the cache looked up.
type learned struct {
	mu      sync.Mutex
	origins map[string]originInfo    // by upstream.Key(name, address)
	names   map[string]int           // completed upstream connections by name and port, any address
	clients map[string]*ticketIssues // by ticketKey: the tickets tlsresume issued each client
	// askers are the origins (by upstream.Key without identity) that sent
	// a CertificateRequest on any upstream handshake: mirror mode asks
	// the client on every later full handshake, even when the upstream
	// leg resumed a session made without one and was not asked again.
	askers map[string]bool
	// answers are how each origin last answered each offer (answerKey),
	// which --mirror overlap shows a client before the origin answers it.
	answers map[string]answer

	sessionIDs *inspect.SessionHistory // session IDs origins issued (seen passing through)
	autoPass   passSet                 // --auto-passthrough's clients and hosts
}

type originInfo struct {
	conns   int // completed upstream connections
	tickets int // tickets received over them
	open    int // upstream connections still open
}

func newLearned() *learned {
	return &learned{origins: map[string]originInfo{}, names: map[string]int{}, clients: map[string]*ticketIssues{}, askers: map[string]bool{},
		answers: map[string]answer{}, sessionIDs: inspect.NewSessionHistory(0)}
}

// openOrigin returns what is known about an origin before this connection
// and counts the upstream connection that starts; closeOrigin or
// abandonOrigin ends it.
func (m *learned) openOrigin(key, name string) (originInfo, bool) {
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
func (m *learned) issuesNoTickets(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	return o.conns > 0 && o.tickets == 0
}

// closeOrigin ends c's upstream connection, counted open by openOrigin:
// completed, with the tickets it received, when every ticket was seen;
// else as abandoned. It does so once.
func (m *learned) closeOrigin(c *conn, ticketsKnown bool) {
	if !c.counted {
		return
	}
	c.counted = false
	if u := c.rec.UpstreamLeg; u != nil && u.Error == "" && ticketsKnown {
		m.completeOrigin(c.origin, c.nameKey(), u.TicketsReceived)
	} else {
		m.abandon(c.origin)
	}
}

// abandonOrigin ends c's upstream connection as one that never completed.
func (m *learned) abandonOrigin(c *conn) {
	if c.counted {
		c.counted = false
		m.abandon(c.origin)
	}
}

// completeOrigin ends an upstream connection that completed, with the
// tickets it received.
func (m *learned) completeOrigin(key, name string, tickets int) {
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
func (m *learned) noteCertRequest(origin string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.askers) >= maxMemory {
		m.askers = map[string]bool{}
	}
	m.askers[origin] = true
}

// asksForCert: the origin asked for a client certificate before.
func (m *learned) asksForCert(origin string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.askers[origin]
}

// abandon ends an upstream connection that never completed.
func (m *learned) abandon(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.origins[key]
	o.open = max(o.open-1, 0)
	m.origins[key] = o
}

// rememberAnswer keeps how the origin answered the offer named key.
func (m *learned) rememberAnswer(key string, a answer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.answers) >= maxMemory {
		m.answers = map[string]answer{}
	}
	m.answers[key] = a
}

// answerTo is how the origin last answered the offer named key.
func (m *learned) answerTo(key string) (answer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.answers[key]
	return a, ok
}

// What is learned of clients: the tickets tlsresume issued each client
// program, so that a connection that offers nothing is told apart from a
// first contact (client_offered_nothing).
//
// A ticket counts from the moment it is issued (lineage's WrapSession),
// whether or not the connection that got it has finished, and only for a
// connection whose hello arrived after it: the first connections of a page
// load open in parallel before any ticket exists, and they had nothing to
// offer. A browser keeps its connections open for minutes, so waiting for
// the issuing connection to finish would miss most tickets.

// maxIssuesKept is how many of a client's latest tickets are kept: a
// connection looks for the latest one issued before its hello.
const maxIssuesKept = 4

// ticketIssue is one ticket tlsresume issued, on connection connID.
type ticketIssue struct {
	connID string
	at     time.Time
	// program is the issuing connection's program (inspect.ProgramName of
	// its first request's User-Agent), known only once that request was
	// read: the ticket is issued during the handshake, before it.
	program atomic.Pointer[string]
}

// noteProgram names the program of the connection that got t.
func (t *ticketIssue) noteProgram(program string) { t.program.Store(&program) }

// programName is the issuing connection's program, "" until known.
func (t *ticketIssue) programName() string {
	if p := t.program.Load(); p != nil {
		return *p
	}
	return ""
}

// ticketIssues are a client's latest tickets, the newest last.
type ticketIssues struct {
	latest [maxIssuesKept]*ticketIssue
	n      int
}

// issuedTicket notes a ticket issued to c's client, now.
func (m *learned) issuedTicket(c *conn, at time.Time) {
	if c.issue != nil {
		return // a connection's further tickets change nothing
	}
	t := &ticketIssue{connID: c.rec.ID, at: at}
	c.issue = t
	key := c.ticketKey()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.clients) >= maxMemory {
		m.clients = map[string]*ticketIssues{}
	}
	is := m.clients[key]
	if is == nil {
		is = &ticketIssues{}
		m.clients[key] = is
	}
	if is.n == maxIssuesKept {
		copy(is.latest[:], is.latest[1:])
		is.n--
	}
	is.latest[is.n] = t
	is.n++
}

// ticketBefore returns the connection that got the latest ticket
// tlsresume issued c's client program for this host before c's hello
// arrived, or "": the verdict's ticketBefore. Only intercepted TLS
// connections count.
func (m *learned) ticketBefore(c *conn) string {
	r := c.rec
	if r.ClientHello == nil || r.Passthrough != "" || c.notTLS != nil || c.helloAt.IsZero() {
		return ""
	}
	program := inspect.ProgramName(r.UserAgent)
	key := c.ticketKey()
	m.mu.Lock()
	defer m.mu.Unlock()
	is := m.clients[key]
	if is == nil {
		return ""
	}
	for i := is.n - 1; i >= 0; i-- {
		t := is.latest[i]
		if t.connID == r.ID || !t.at.Before(c.helloAt) {
			continue
		}
		if t.programName() == program {
			return t.connID
		}
	}
	return ""
}
