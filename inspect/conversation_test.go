package inspect

import (
	"strings"
	"testing"
	"time"
)

// step is one chunk of a connection: from the client or from the server.
type step struct {
	client bool
	data   []byte
}

func c(data ...[]byte) step { return step{true, concat(data...)} }
func s(data ...[]byte) step { return step{false, concat(data...)} }

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func hs(msgs ...[]byte) []byte { return records(recordHandshake, concat(msgs...), 1<<14) }

var (
	certificate = handshakeMsg(typeCertificate, make([]byte, 900))
	helloDone   = handshakeMsg(typeServerHelloDone, nil)
	// NewSessionTicket: lifetime hint 7200, a 160-byte ticket (RFC 5077, Section 3.3).
	newTicket = handshakeMsg(typeNewSessionTicket, append([]byte{0, 0, 0x1c, 0x20, 0, 160}, make([]byte, 160)...))
	finished  = records(recordHandshake, make([]byte, 40), 1<<14) // encrypted: random-looking
	sid       = tls12SessionID.sessionID
)

func runConversation(t *testing.T, history *SessionHistory, steps []step) []*Record {
	t.Helper()
	var out []*Record
	conv := &Conversation{Source: "test", ClientAddr: "127.0.0.1:5000", ServerAddr: "127.0.0.1:443", History: history,
		Emit: func(r *Record) { out = append(out, r) }}
	for _, st := range steps {
		if st.client {
			conv.Client(st.data, time.Time{}, 0)
		} else {
			conv.Server(st.data, time.Time{}, 0)
		}
	}
	conv.Close()
	return out
}

func TestConversationVerdicts(t *testing.T) {
	ticket12 := tls12SessionID
	ticket12.extensions = append([]testExt{extBytes(ExtSessionTicket, 160)}, ticket12.extensions...)
	tls13PSK := opensslResume
	tests := []struct {
		name      string
		history   bool
		steps     []step
		attempts  []Attempt
		resumed   []bool
		resumedBy []Attempt // "" for null
		hrr       []bool
	}{
		{
			name: "tls1.2 full handshake issues a ticket",
			steps: []step{
				c(hs(urlSession.marshal())),
				s(hs(testServerHello(VersionTLS12, nil, false, extEmpty(ExtSessionTicket)), certificate, helloDone)),
				c(hs(handshakeMsg(16, make([]byte, 33))), ccsRecord, finished),
				s(hs(newTicket), ccsRecord, finished),
			},
			attempts: []Attempt{AttemptNone}, resumed: []bool{false}, resumedBy: []Attempt{""}, hrr: []bool{false},
		},
		{
			name: "tls1.2 abbreviated handshake by ticket",
			steps: []step{
				c(hs(ticket12.marshal())),
				s(hs(testServerHello(VersionTLS12, sid, false)), ccsRecord, finished),
				c(ccsRecord, finished),
			},
			attempts: []Attempt{AttemptTicket}, resumed: []bool{true}, resumedBy: []Attempt{AttemptTicket}, hrr: []bool{false},
		},
		{
			name:    "tls1.2 abbreviated handshake by session id",
			history: true,
			steps: []step{
				c(hs(tls12SessionID.marshal())),
				s(hs(testServerHello(VersionTLS12, sid, false)), ccsRecord, finished),
			},
			attempts: []Attempt{AttemptSessionID}, resumed: []bool{true}, resumedBy: []Attempt{AttemptSessionID}, hrr: []bool{false},
		},
		{
			name: "tls1.3 psk accepted",
			steps: []step{
				c(hs(tls13PSK.marshal())),
				s(hs(testServerHello(VersionTLS13, make([]byte, 32), false, testExt{ExtPreSharedKey, []byte{0, 0}})), ccsRecord),
			},
			attempts: []Attempt{AttemptPSK}, resumed: []bool{true}, resumedBy: []Attempt{AttemptPSK}, hrr: []bool{false},
		},
		{
			name: "tls1.3 psk refused",
			steps: []step{
				c(hs(tls13PSK.marshal())),
				s(hs(testServerHello(VersionTLS13, make([]byte, 32), false)), ccsRecord),
			},
			attempts: []Attempt{AttemptPSK}, resumed: []bool{false}, resumedBy: []Attempt{""}, hrr: []bool{false},
		},
		{
			name: "hello retry request then a second hello",
			steps: []step{
				c(hs(gnutls.marshal())),
				s(hs(testServerHello(VersionTLS13, make([]byte, 32), true, testExt{ExtKeyShare, []byte{0, 0x1d}})), ccsRecord),
				c(ccsRecord, hs(gnutls.marshal())),
				s(hs(testServerHello(VersionTLS13, make([]byte, 32), false))),
			},
			attempts: []Attempt{AttemptNone, AttemptNone}, resumed: []bool{false, false}, resumedBy: []Attempt{"", ""}, hrr: []bool{true, false},
		},
		{
			name: "hello split over three records and many reads",
			steps: splitSteps(records(recordHandshake, opensslResume.marshal(), 150), 7,
				s(hs(testServerHello(VersionTLS13, nil, false, testExt{ExtPreSharedKey, []byte{0, 0}})))),
			attempts: []Attempt{AttemptPSK}, resumed: []bool{true}, resumedBy: []Attempt{AttemptPSK}, hrr: []bool{false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h *SessionHistory
			if tt.history {
				h = NewSessionHistory(0)
				h.Add("127.0.0.1:443", sid)
			}
			recs := runConversation(t, h, tt.steps)
			if len(recs) != len(tt.attempts) {
				t.Fatalf("%d records, want %d", len(recs), len(tt.attempts))
			}
			for i, r := range recs {
				if r.ClientHello == nil || r.ServerHello == nil {
					t.Fatalf("record %d: client_hello %v, server_hello %v, error %q", i, r.ClientHello, r.ServerHello, r.Error)
				}
				sh := r.ServerHello
				var by Attempt
				if sh.ResumedBy != nil {
					by = *sh.ResumedBy
				}
				if r.ClientHello.Attempt != tt.attempts[i] || sh.Resumed != tt.resumed[i] || by != tt.resumedBy[i] || sh.HRR != tt.hrr[i] || !sh.Complete {
					t.Errorf("record %d: attempt %s resumed %v by %q hrr %v complete %v; want %s %v %q %v true",
						i, r.ClientHello.Attempt, sh.Resumed, by, sh.HRR, sh.Complete, tt.attempts[i], tt.resumed[i], tt.resumedBy[i], tt.hrr[i])
				}
			}
		})
	}
}

// splitSteps cuts client bytes into n-byte reads, then appends more steps.
func splitSteps(b []byte, n int, more ...step) []step {
	var out []step
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, c(b[:k]))
		b = b[k:]
	}
	return append(out, more...)
}

func TestConversationIncomplete(t *testing.T) {
	t.Run("no server hello", func(t *testing.T) {
		recs := runConversation(t, nil, []step{c(hs(urlSession.marshal()))})
		if len(recs) != 1 || recs[0].ServerHello != nil {
			t.Fatalf("got %+v", recs)
		}
	})
	t.Run("tls1.2 flight cut before ChangeCipherSpec", func(t *testing.T) {
		recs := runConversation(t, nil, []step{
			c(hs(tls12SessionID.marshal())),
			s(hs(testServerHello(VersionTLS12, sid, false))),
		})
		if len(recs) != 1 || recs[0].ServerHello.Complete || recs[0].ServerHello.Resumed {
			t.Fatalf("an unseen flight must be incomplete and not resumed: %+v", recs[0].ServerHello)
		}
	})
	t.Run("server alert", func(t *testing.T) {
		recs := runConversation(t, nil, []step{
			c(hs(tls12SessionID.marshal())),
			s(hs(testServerHello(VersionTLS12, nil, false)), []byte{recordAlert, 3, 3, 0, 2, 2, 40}),
		})
		if len(recs) != 1 || recs[0].Error == "" || recs[0].ServerHello.Complete {
			t.Fatalf("got %+v", recs[0])
		}
	})
	t.Run("client rejects the certificate", func(t *testing.T) {
		// curl trusting another CA: alert 48 (unknown_ca) in plaintext,
		// after the server's Certificate and ServerHelloDone.
		recs := runConversation(t, nil, []step{
			c(hs(urlSession.marshal())),
			s(hs(testServerHello(VersionTLS12, nil, false), certificate, helloDone)),
			c([]byte{recordAlert, 3, 3, 0, 2, 2, 48}),
		})
		if len(recs) != 1 || recs[0].ClientAlert != "unknown_ca" || recs[0].ServerHello.Complete {
			t.Fatalf("got %+v", recs[0])
		}
		if why := Explain(recs[0]); !strings.Contains(why, "alert unknown_ca") {
			t.Errorf("Explain: %s", why)
		}
	})
	t.Run("encrypted client alert", func(t *testing.T) {
		recs := runConversation(t, nil, []step{
			c(hs(urlSession.marshal())),
			s(hs(testServerHello(VersionTLS12, nil, false), certificate, helloDone)),
			c(hs(handshakeMsg(16, make([]byte, 33))), ccsRecord, records(recordAlert, make([]byte, 26), 1<<14)),
		})
		if len(recs) != 1 || recs[0].ClientAlert != "" {
			t.Fatalf("an encrypted alert was read: %+v", recs[0])
		}
	})
	t.Run("garbage from the client", func(t *testing.T) {
		recs := runConversation(t, nil, []step{c([]byte("GET / HTTP/1.1\r\n\r\n"))})
		if len(recs) != 0 {
			t.Fatalf("got %d records from plain HTTP", len(recs))
		}
	})
}

func TestSessionHistoryBound(t *testing.T) {
	h := NewSessionHistory(2)
	h.Add("s", []byte{1})
	h.Add("s", []byte{2})
	h.Add("s", []byte{3})
	if h.Has("s", []byte{1}) || !h.Has("s", []byte{2}) || !h.Has("s", []byte{3}) || h.Has("t", []byte{3}) {
		t.Fatal("history does not evict the oldest entry or mixes servers")
	}
	var nilHistory *SessionHistory
	nilHistory.Add("s", []byte{1})
	if nilHistory.Has("s", []byte{1}) {
		t.Fatal("a nil history remembered something")
	}
}
