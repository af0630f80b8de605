package proxy

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// TestTLS12OriginWithoutTickets: openssl s_server -tls1_2 -no_ticket
// resumes its clients by session ID only. Its TLS 1.2 handshake with
// tlsresume carries no NewSessionTicket, so tlsresume issues the client no
// ticket either, from the first connection on (it once issued one, then
// refused that same ticket on the next connection). Straight at the
// origin, s_client resumes its second connection by session ID.
func TestTLS12OriginWithoutTickets(t *testing.T) {
	bin := tlstest.Need(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	files := newOriginFiles(t, dir)
	o := startOpenSSLOrigin(t, ctx, files, "-tls1_2", "-no_ticket")
	e := startProxy(t, tempDir(t), func(c *Config) { c.UpstreamRoots = files.pool })
	var recs []*inspect.ConnRecord
	cr := &clientRun{t: t, ctx: ctx, dir: dir, proxy: e.addr, ca: e.ca.CertFile(), origin: o.addr(),
		between: func() { recs = append(recs, e.next()) }}
	reps := opensslClient("-tls1_2")(cr, bin)
	recs = append(recs, e.next())
	for i, r := range recs {
		t.Logf("%s: tickets_sent %d, mirrored.tickets %v, ticket %s, verdict %s: %s",
			r.ID, r.ClientLeg.TicketsSent, r.Mirrored.Tickets, r.ClientLeg.Ticket, r.Verdict.Code, r.Verdict.Text)
		if r.ClientLeg.TicketsSent != 0 || r.Mirrored.Tickets {
			t.Errorf("conn %d %s: tlsresume issued %d tickets (mirrored.tickets %v) where the origin issues none",
				i, r.ID, r.ClientLeg.TicketsSent, r.Mirrored.Tickets)
		}
		if r.ClientLeg.Ticket == inspect.TicketDisabled {
			t.Errorf("conn %d %s: tlsresume refused a ticket: %s", i, r.ID, r.Verdict.Text)
		}
		if r.Verdict.Client != inspect.CodeClientTicketsDisabled || !strings.Contains(r.Verdict.Text, "the origin issues none") {
			t.Errorf("conn %d %s: client verdict %s: %s", i, r.ID, r.Verdict.Client, r.Verdict.Text)
		}
		if *reps[i].resumed {
			t.Errorf("conn %d %s: s_client resumed through tlsresume", i, r.ID)
		}
	}
	direct := opensslClient("-tls1_2")(&clientRun{t: t, ctx: ctx, dir: t.TempDir(), ca: files.cert, origin: o.addr()}, bin)
	if *direct[0].resumed || !*direct[1].resumed {
		t.Errorf("straight at the origin, s_client resumed %v then %v; want its second connection resumed by session ID", *direct[0].resumed, *direct[1].resumed)
	}
}

// TestOwnTicketNeverRefused: a TLS 1.3 origin that issues no tickets. The
// first connection cannot know that before its client is answered (TLS
// 1.3 tickets follow the handshake), so it issues the client a ticket;
// the next connection, mirroring an origin now known to issue none,
// still accepts that ticket: tlsresume refuses a ticket of its own only by
// --client-resumption.
func TestOwnTicketNeverRefused(t *testing.T) {
	o := startOrigin(t, func(c *tls.Config) { c.SessionTicketsDisabled = true })
	e := startProxy(t, tempDir(t), nil)
	cache := tls.NewLRUClientSessionCache(8)
	e.goGet("origin.test", o.addr, cache, 0)
	if r := e.next(); r.ClientLeg.TicketsSent == 0 {
		t.Fatalf("%s: no ticket issued on first contact", r.ID)
	}
	resumed, _ := e.goGet("origin.test", o.addr, cache, 0)
	r := e.next()
	if !resumed || r.ClientLeg.Ticket != inspect.TicketOurs || r.Verdict.Client != inspect.CodeClientResumed || r.Verdict.Upstream != inspect.CodeUpstreamNoTicket {
		t.Errorf("%s: client resumed %v, ticket %s, verdict %s (client %s, upstream %s): %s",
			r.ID, resumed, r.ClientLeg.Ticket, r.Verdict.Code, r.Verdict.Client, r.Verdict.Upstream, r.Verdict.Text)
	}
	if r.Mirrored.Tickets {
		t.Errorf("%s: mirrored.tickets true for an origin that issues none", r.ID)
	}
}
