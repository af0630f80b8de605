package proxy

// How a connection is handled, as decide says.
type handling int

const (
	intercept      handling = iota // terminate its TLS and handshake with the origin itself
	passThrough                    // relay its bytes untouched, reading both hellos (untouched.go)
	relayUntouched                 // not TLS: relay its bytes untouched (untouched.go)
	refuse                         // nowhere to go
)

// decide is the path's third step: intercept the connection, pass it
// through (c.rec.Passthrough says why), or relay it untouched because it
// is not TLS.
func (c *conn) decide() (handling, error) {
	switch {
	case c.notTLS != nil:
		return relayUntouched, nil
	case c.routeErr != nil:
		return refuse, c.routeErr
	}
	why := c.passthroughReason()
	if why == "" {
		why = c.sessionIDReason(0)
	}
	if why != "" {
		c.rec.Passthrough = why
		return passThrough, nil
	}
	c.offer = newUpstreamOffer(&c.hello)
	return intercept, nil
}
