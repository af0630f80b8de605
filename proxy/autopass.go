package proxy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// AutoPass is one client that --auto-passthrough passes through for one
// host: a client program (address and TLS stack) that rejected tlsresume's
// certificate for it, and the evidence.
type AutoPass struct {
	Client string    `json:"client"` // the client's IP and JA4 program
	Host   string    `json:"host"`
	Reason string    `json:"reason"` // what triggered it, naming the connections
	Since  time.Time `json:"since"`
}

// passSet is --auto-passthrough's memory, per client program and host. An
// alert rejecting the certificate is evidence enough; a hang-up right after
// the certificate without an alert (how some apps pin, and also what an
// impatient client does) must happen twice.
type passSet struct {
	mu      sync.Mutex
	entries map[string]*passEntry // by client + host
}

type passEntry struct {
	AutoPass
	closes []string // connections that hung up at the certificate
	active bool
}

// reject notes a rejection of tlsresume's certificate by connID; it says
// whether that made the client passed through.
func (p *passSet) reject(client, host, connID, alert string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries == nil || len(p.entries) >= maxMemory {
		p.entries = map[string]*passEntry{}
	}
	key := client + "|" + host
	e := p.entries[key]
	if e == nil {
		e = &passEntry{AutoPass: AutoPass{Client: client, Host: host}}
		p.entries[key] = e
	}
	if e.active {
		return false
	}
	switch {
	case alert != "":
		e.Reason = fmt.Sprintf("this client rejected tlsresume's certificate for %s with alert %s (connection %s)", host, alert, connID)
	default:
		e.closes = append(e.closes, connID)
		if len(e.closes) < 2 {
			return false
		}
		e.Reason = fmt.Sprintf("this client hung up right after tlsresume's certificate for %s, twice (connections %s)", host, strings.Join(e.closes, ", "))
	}
	e.active, e.Since = true, now
	return true
}

// get returns why client is passed through for host, if it is.
func (p *passSet) get(client, host string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[client+"|"+host]
	if e == nil || !e.active {
		return "", false
	}
	return e.Reason, true
}

func (p *passSet) list() []AutoPass {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AutoPass
	for _, e := range p.entries {
		if e.active {
			out = append(out, e.AutoPass)
		}
	}
	slices.SortFunc(out, func(a, b AutoPass) int { return a.Since.Compare(b.Since) })
	return out
}

func (p *passSet) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, e := range p.entries {
		if e.active {
			n++
		}
	}
	p.entries = nil
	return n
}

// AutoPassthroughs lists the clients --auto-passthrough passes through.
func (s *Server) AutoPassthroughs() []AutoPass { return s.learned.autoPass.list() }

// ResetAutoPassthrough intercepts every client again; it returns how many
// were passed through.
func (s *Server) ResetAutoPassthrough() int {
	n := s.learned.autoPass.reset()
	s.cfg.Log.Info().Int("cleared", n).Msg("--auto-passthrough: every client is intercepted again")
	return n
}
