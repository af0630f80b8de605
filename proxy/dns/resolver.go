package dns

import (
	"context"
	"net"
)

// Resolver returns a Go resolver that sends every query to upstream
// ("ip:port"; ":53" is added when the port is missing), whatever
// /etc/resolv.conf says. tlsresume resolves origins with it, so that its own
// lookups never reach its own DNS server (which would answer intercepted
// names with the proxy itself). /etc/hosts is still consulted first, as
// Go's resolver always does.
func Resolver(upstream string) *net.Resolver {
	if up, err := normalizeUpstream(upstream); err == nil {
		upstream = up
	}
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		// network is "udp" or "tcp", as Go's resolver chose; the address
		// it meant (from resolv.conf) is replaced by upstream.
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, upstream)
		},
	}
}
