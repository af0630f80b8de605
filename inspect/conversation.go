package inspect

import (
	"fmt"
	"time"
)

// Conversation follows both directions of one TLS connection, as bytes in
// the order they were seen, and turns each ClientHello with the server's
// answer into a Record. A record is handed to Emit once its verdict is known
// (for TLS 1.3 at the ServerHello; for TLS 1.2 at the server's
// ChangeCipherSpec, which ends the plaintext flight) or at Close.
type Conversation struct {
	Source     Source // copied into records
	ClientAddr string
	ServerAddr string
	Transport  byte            // TransportTCP unless set
	History    *SessionHistory // optional: session IDs issued earlier, shared across conversations
	Emit       func(*Record)

	client, server recordReader
	open           []*exchange // hellos whose verdict is not known yet, oldest first
	scratch        ClientHello
	sh             ServerHello
	lastWasHRR     bool // the last exchange ended in a HelloRetryRequest
}

// exchange is one ClientHello waiting for its verdict.
type exchange struct {
	rec           *Record
	hello         *ClientHelloRecord
	sessionID     string // hex, for the session-ID echo check
	answered      bool   // a ServerHello (or HRR) was attached
	fullHandshake bool   // TLS 1.2: Certificate or ServerKeyExchange seen
}

// Client feeds bytes the client sent; t and frame say when and where they
// were seen (frame may be 0).
func (c *Conversation) Client(data []byte, t time.Time, frame int) {
	c.client.rehello = true
	c.client.feed(data, func(ev wireEvent) { c.clientEvent(ev, t, frame) })
}

// Server feeds bytes the server sent.
func (c *Conversation) Server(data []byte, t time.Time, frame int) {
	c.server.feed(data, func(ev wireEvent) { c.serverEvent(ev) })
}

// Close emits every record still waiting: the connection ended, so what was
// not seen is recorded as not seen (server_hello null, or complete false).
func (c *Conversation) Close() {
	for _, e := range c.open {
		c.emit(e)
	}
	c.open = nil
}

func (c *Conversation) clientEvent(ev wireEvent, t time.Time, frame int) {
	switch ev.record {
	case recordAlert:
		// A 2-byte alert is plaintext (an encrypted one carries its MAC or
		// tag). Sent while the server's TLS 1.2 flight is read, it ends the
		// handshake: a client that rejects the certificate says so here.
		if e := c.inFlight(); e != nil && len(ev.body) == 2 {
			e.rec.ClientAlert = AlertName(ev.body[1])
			c.decideTLS12(e, false)
		}
	case recordChangeCipherSpec:
		// TLS 1.3 middlebox compatibility: a client sends ChangeCipherSpec
		// after a HelloRetryRequest, before its second ClientHello (RFC 8446,
		// Appendix D.4). Anywhere else its next handshake records are encrypted.
		if !c.awaitingSecondHello() {
			c.client.encrypted = true
		}
	case recordHandshake:
		if ev.msgType != typeClientHello {
			return
		}
		c.lastWasHRR = false
		rec := &Record{V: SchemaVersion, Time: t, Frame: frame, Source: c.Source, Transport: c.transportName(),
			ClientAddr: c.ClientAddr, ServerAddr: c.ServerAddr}
		e := &exchange{rec: rec}
		if ev.msg == nil {
			rec.Error = "inspect: ClientHello longer than 64 KiB"
		} else if err := c.scratch.Unmarshal(ev.msg); err != nil {
			rec.Error = err.Error()
		} else {
			h := &c.scratch
			rec.SNI = string(h.ServerName)
			issued := c.History.Has(c.ServerAddr, h.SessionID)
			e.hello = NewClientHelloRecord(h, AttemptOf(h, issued), Fingerprint(h, c.transport()))
			rec.ClientHello = e.hello
			e.sessionID = e.hello.SessionID
		}
		c.open = append(c.open, e)
	}
}

func (c *Conversation) serverEvent(ev wireEvent) {
	switch ev.record {
	case recordHandshake:
		switch ev.msgType {
		case typeServerHello:
			c.serverHello(ev.msg)
		case typeCertificate, typeServerKeyExchange:
			if e := c.inFlight(); e != nil {
				e.fullHandshake = true
				e.rec.ServerHello.Certificate = e.rec.ServerHello.Certificate || ev.msgType == typeCertificate
			}
		case typeNewSessionTicket:
			if e := c.inFlight(); e != nil && len(ev.msg) >= 10 {
				m := ev.msg[4:]
				e.rec.ServerHello.NewSessionTicket = &TicketFact{
					LifetimeHint: uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3]),
					Len:          int(m[4])<<8 | int(m[5]),
				}
			}
		}
	case recordChangeCipherSpec:
		// In TLS 1.2 the server's ChangeCipherSpec ends its plaintext flight:
		// without a Certificate before it, the handshake was abbreviated,
		// i.e. resumed (RFC 5246, Section 7.3, Figure 2).
		if e := c.inFlight(); e != nil {
			c.decideTLS12(e, true)
			c.server.encrypted = true
		}
	case recordAlert:
		if e := c.inFlight(); e != nil && len(ev.body) == 2 {
			e.rec.Error = fmt.Sprintf("server sent alert %d (%s) before ChangeCipherSpec", ev.body[1], AlertName(ev.body[1]))
			c.decideTLS12(e, false)
		}
	}
}

func (c *Conversation) serverHello(msg []byte) {
	e := c.firstUnanswered()
	if e == nil {
		return // a ServerHello whose ClientHello was not captured
	}
	e.answered = true
	if msg == nil {
		e.rec.Error = "inspect: ServerHello longer than 64 KiB"
		c.finish(e)
		return
	}
	if err := c.sh.Unmarshal(msg); err != nil {
		e.rec.Error = err.Error()
		c.finish(e)
		return
	}
	sh := NewServerHelloRecord(&c.sh)
	e.rec.ServerHello = sh
	switch {
	case c.sh.HRR:
		sh.Complete = true
		c.finish(e)
		c.lastWasHRR = true
	case c.sh.Version() >= VersionTLS13:
		// TLS 1.3 resumed = the ServerHello selects a PSK (RFC 8446, Section 4.2.11).
		sh.Complete = true
		sh.Resumed = c.sh.SelectedPSK >= 0
		if sh.Resumed {
			sh.ResumedBy = attemptPtr(AttemptPSK)
		}
		c.server.encrypted = true
		c.finish(e)
	default:
		// TLS 1.2 and earlier: a non-empty session ID in the ServerHello is
		// one this server may accept later (RFC 5246, Section 7.4.1.3).
		c.History.Add(c.ServerAddr, c.sh.SessionID)
	}
}

// decideTLS12 sets the verdict of a TLS 1.2 exchange from its flight.
func (c *Conversation) decideTLS12(e *exchange, complete bool) {
	sh := e.rec.ServerHello
	sh.Complete = complete
	sh.Resumed = complete && !e.fullHandshake
	if sh.Resumed {
		// A server that accepts a ticket echoes the session ID the client
		// sent with it (RFC 5077, Section 3.4), so an echo alone does not
		// say which mechanism resumed: a ticket offered and accepted wins.
		by := AttemptSessionID
		if e.hello != nil && e.hello.SessionTicket.Len > 0 {
			by = AttemptTicket
		}
		sh.ResumedBy = attemptPtr(by)
	}
	c.finish(e)
}

// finish emits an exchange and removes it from the open list.
func (c *Conversation) finish(e *exchange) {
	for i, o := range c.open {
		if o == e {
			c.open = append(c.open[:i], c.open[i+1:]...)
			break
		}
	}
	c.emit(e)
}

func (c *Conversation) emit(e *exchange) {
	if c.Emit != nil {
		c.Emit(e.rec)
	}
}

func (c *Conversation) firstUnanswered() *exchange {
	for _, e := range c.open {
		if !e.answered {
			return e
		}
	}
	return nil
}

// inFlight returns the exchange whose TLS 1.2 server flight is being read.
func (c *Conversation) inFlight() *exchange {
	for _, e := range c.open {
		if e.answered && e.rec.ServerHello != nil {
			return e
		}
	}
	return nil
}

// awaitingSecondHello reports whether the server's last word was a
// HelloRetryRequest that the client has not answered yet.
func (c *Conversation) awaitingSecondHello() bool {
	return len(c.open) == 0 && c.lastWasHRR
}

func (c *Conversation) transportName() string {
	if c.transport() == TransportQUIC {
		return TransportNameQUIC
	}
	return TransportNameTCP
}

func (c *Conversation) transport() byte {
	if c.Transport == 0 {
		return TransportTCP
	}
	return c.Transport
}
