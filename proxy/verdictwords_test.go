package proxy

import (
	"strings"
	"testing"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestOfferedNothingWords: a client that offered nothing after it was
// given a ticket is called the URLSession pattern only when its hello is
// Apple's stack by the JA4 table; curl, Python or a new process of any
// program are told what is known, whatever their User-Agent says.
func TestOfferedNothingWords(t *testing.T) {
	for _, tt := range []struct {
		name, ja4, ua  string
		askedForTicket bool
		want, not      string
	}{
		{"curl, a new process", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", "curl/7.88.1", false,
			"offered nothing (no session_ticket, no pre_shared_key) although this program was given a ticket on c2: a new process, a client that keeps no sessions, or one that had not yet read the ticket", "URLSession"},
		{"Python urllib", "t13d181100_85036bcba153_d41ae481755e", "Python-urllib/3.11", true,
			"offered no ticket (it asked for a new one) although this program was given one on c2: a new process", "URLSession"},
		{"an app's User-Agent on OpenSSL", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", "MyApp/1.0 CFNetwork/1494 Darwin/23.0", false,
			"on c2: a new process", "URLSession"},
		{"Apple's stack", "t13d2613h2_2802a3db6c62_845d286b0d67", "MyApp/1.0 CFNetwork/1494 Darwin/23.0", false,
			"although this program was given a ticket on c2: likely Apple's stack (JA4 table): the URLSession pattern", "new process"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch := &inspect.ClientHelloRecord{Attempt: inspect.AttemptNone, JA4: tt.ja4, SessionTicket: inspect.SessionTicketFact{Offered: tt.askedForTicket}}
			r := &inspect.ConnRecord{Record: inspect.Record{ClientHello: ch}, UserAgent: tt.ua,
				ClientLeg: &inspect.ClientLeg{Version: "1.3", Ticket: inspect.TicketNone}, UpstreamLeg: &inspect.UpstreamLeg{Resumed: true, Cache: inspect.CacheHit}}
			v := decide(r, verdictFacts{ticketBefore: "c2"})
			if v.Client != inspect.CodeClientOfferedNothing || !strings.Contains(v.Text, tt.want) || strings.Contains(v.Text, tt.not) {
				t.Errorf("verdict %s: %q\nwant it to say %q and not %q", v.Client, v.Text, tt.want, tt.not)
			}
		})
	}
}
