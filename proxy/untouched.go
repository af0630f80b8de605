package proxy

import (
	"fmt"
	"sync"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// maxTap bounds how many bytes of each direction of a passed-through
// connection are read for handshake facts; the rest only flows.
const maxTap = 256 << 10

// relayUntouched relays a connection whose payload is not TLS untouched,
// and records it: its record's error says what it is.
func (c *conn) relayUntouched() error {
	s := c.s
	up, err := s.dialTCP(s.ctx, c)
	if err == nil && s.isSelfAddr(up.RemoteAddr()) {
		up.Close()
		err = errLoop
	}
	if err == nil {
		pipe(c.clientStream(), up, s.cfg.IdleTimeout, s.cfg.HalfCloseTimeout, nil)
	}
	return c.notTLS
}

// passThrough relays the connection untouched (c.rec.Passthrough says why)
// and still reads both sides' hellos (package inspect), so the record says
// whether the real server resumed the client: the only honest view of a
// client that pins certificates and will never trust tlsresume's CA.
func (c *conn) passThrough() error {
	s := c.s
	up, err := s.dialTCP(s.ctx, c)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.dialAddr(), err)
	}
	c.rec.ServerAddr = up.RemoteAddr().String()
	t := &tap{conv: &inspect.Conversation{
		// History is keyed by the address dialled, as route asks it.
		Source: c.rec.Source, ClientAddr: c.rec.ClientAddr, ServerAddr: c.dialAddr(), History: s.learned.sessionIDs,
	}}
	t.conv.Emit = func(r *inspect.Record) {
		if c.rec.ServerHello == nil || c.rec.ServerHello.HRR {
			c.rec.ServerHello = r.ServerHello
		}
		if r.ClientAlert != "" {
			c.rec.ClientAlert = r.ClientAlert // it ended the handshake: a rejected certificate, say
		}
	}
	hello := c.replay
	c.replay = nil
	t.feed(true, hello)
	if _, err := up.Write(hello); err != nil {
		up.Close()
		return fmt.Errorf("writing the ClientHello upstream: %w", err)
	}
	err = pipe(c.client, up, s.cfg.IdleTimeout, s.cfg.HalfCloseTimeout, t.feed)
	t.close()
	return err
}

// tap feeds the first bytes of both directions to a Conversation.
type tap struct {
	mu   sync.Mutex
	conv *inspect.Conversation
	fed  [2]int
}

func (t *tap) feed(fromClient bool, b []byte) {
	i := 0
	if !fromClient {
		i = 1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fed[i] >= maxTap || len(b) == 0 {
		return
	}
	b = b[:min(len(b), maxTap-t.fed[i])]
	t.fed[i] += len(b)
	if fromClient {
		t.conv.Client(b, time.Now(), 0)
	} else {
		t.conv.Server(b, time.Now(), 0)
	}
}

func (t *tap) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conv.Close()
}
