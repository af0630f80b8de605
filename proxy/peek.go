package proxy

import (
	"errors"
	"fmt"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// peek is the path's first step: it reads the client's ClientHello without
// answering it, and keeps every byte read for replay, so that whatever
// follows (a TLS server, the origin itself) sees the client's bytes as the
// client sent them. While the hello arrives, the origin is dialled when
// the source already named it (predial). A client that speaks first and
// not TLS is noted (c.notTLS), not refused: decide relays it untouched.
func (c *conn) peek() error {
	s := c.s
	if addr := c.dialAddr(); addr != "" {
		c.pre = s.startPredial(addr)
	}
	raw := c.client.Conn
	if c.silence > 0 {
		if silent, err := c.awaitClient(raw); silent || err != nil {
			return err // silent: c.notTLS says so, and decide relays it untouched
		}
	}
	raw.SetReadDeadline(s.cfg.Now().Add(s.cfg.PeekTimeout))
	msg, peeked, err := inspect.ReadClientHello(c.in)
	raw.SetReadDeadline(time.Time{})
	c.replay = peeked
	if rc, ok := c.in.(*replayConn); ok {
		// Bytes the source read past its request and the hello did not use
		// belong to the client stream too.
		c.replay = append(c.replay, rc.pending...)
	}
	c.in = nil
	c.replayed = len(c.replay)
	notTLS := errors.Is(err, inspect.ErrNotTLS) || errors.Is(err, inspect.ErrSSLv2)
	switch {
	case err == nil || notTLS:
		establish(raw) // it spoke: it keeps its slot under --max-conns
	case wasEvicted(raw):
		err = errEvicted
	}
	if notTLS {
		c.notTLS = err
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the ClientHello: %w", err)
	}
	if err := c.hello.Unmarshal(msg); err != nil {
		return err
	}
	c.rec.SNI = string(c.hello.ServerName)
	c.helloAt = s.cfg.Now()
	return nil
}
