package dns

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config configures a Server. The zero value of each field means its
// documented default; defaults are applied in one place, withDefaults.
type Config struct {
	// Listen is the address served over both UDP and TCP. Default
	// "0.0.0.0:53" (IPv4 only; ":53" serves IPv6 too). Port 0 picks one
	// free port for both (tests).
	Listen string
	// AnswerV4 is the proxy's IPv4 address, given in A answers for
	// intercepted names. Required.
	AnswerV4 netip.Addr
	// AnswerV6 is the proxy's IPv6 address for AAAA answers. Default: none;
	// AAAA queries for intercepted names then get an empty NOERROR answer,
	// so clients use IPv4.
	AnswerV6 netip.Addr
	// Intercept lists glob patterns of the names to intercept, matched
	// case-insensitively against the whole name without its trailing dot:
	// "*" matches any run of characters (dots included) and "?" any one
	// character, so "*.example.com" matches every name under example.com
	// but not example.com itself. Default: every name.
	Intercept []string
	// Upstream is the resolver, "ip:port" (":53" is added when the port is
	// missing), that answers everything not intercepted. Default: the first
	// nameserver of /etc/resolv.conf. New refuses an upstream that is this
	// server itself.
	Upstream string
	// TTL of intercepted answers, in seconds. Default 60.
	TTL uint32

	// ForwardTimeout bounds each forwarded query, including its TCP retry.
	// Default 2s.
	ForwardTimeout time.Duration
	// MaxForwards caps the forwarded queries in flight; a query over the
	// cap gets SERVFAIL at once. Default 256.
	MaxForwards int
	// MaxTCPConns caps the client TCP connections open at once; more wait
	// in the listen backlog. Default 256.
	MaxTCPConns int

	// Allow lists the client networks served. A query from elsewhere is
	// dropped unanswered (UDP) or its connection closed at accept (TCP),
	// and counted (Server.Refusals). Default: loopback only, like the
	// proxy's --allow.
	Allow []netip.Prefix
	// RateLimit is how many queries a second each client IP gets
	// answered, on average, and RateBurst how many at once; a query over
	// it is dropped (UDP) or ends its connection (TCP), and counted.
	// Defaults 100 and 200: a phone opening an app or a browser loading a
	// page asks far fewer. A negative RateLimit means no limit.
	RateLimit float64
	RateBurst int
	// MaxClients bounds the client IPs whose rate is tracked; beyond it
	// the one seen longest ago is forgotten (and starts with a full burst
	// if it comes back). Default 4096.
	MaxClients int

	// Log receives one event per answer: intercepted answers at info level,
	// forwarded ones at debug, upstream failures at warn, malformed queries
	// at debug. Default zerolog.Nop().
	Log zerolog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// forwardOnly: made by NewForwarder, which intercepts nothing and
	// listens on nothing.
	forwardOnly bool
}

const (
	defaultListen     = "0.0.0.0:53"
	defaultTTL        = 60
	defaultResolvConf = "/etc/resolv.conf"
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = defaultListen
	}
	if c.TTL == 0 {
		c.TTL = defaultTTL
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = 2 * time.Second
	}
	if c.MaxForwards == 0 {
		c.MaxForwards = 256
	}
	if c.MaxTCPConns == 0 {
		c.MaxTCPConns = 256
	}
	if c.RateLimit == 0 {
		c.RateLimit = 100
	}
	if c.RateBurst == 0 {
		c.RateBurst = 200
	}
	if c.MaxClients == 0 {
		c.MaxClients = 4096
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// validate checks a Config with defaults applied and resolves its upstream
// (reading resolvConf when Upstream is empty).
func (c *Config) validate(resolvConf string) error {
	if !c.forwardOnly && !c.AnswerV4.Is4() {
		return fmt.Errorf("dns: AnswerV4 %v is not an IPv4 address (the proxy's address is required)", c.AnswerV4)
	}
	if c.AnswerV6.IsValid() && (!c.AnswerV6.Is6() || c.AnswerV6.Is4In6()) {
		return fmt.Errorf("dns: AnswerV6 %v is not an IPv6 address", c.AnswerV6)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("dns: parsing Listen %q: %w", c.Listen, err)
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			return errors.New("dns: invalid Allow prefix")
		}
	}
	if c.RateBurst < 0 || c.MaxClients < 0 {
		return fmt.Errorf("dns: RateBurst %d and MaxClients %d must not be negative", c.RateBurst, c.MaxClients)
	}
	for _, p := range c.Intercept {
		if p == "" {
			return errors.New("dns: empty Intercept pattern")
		}
	}
	source := "Upstream"
	if c.Upstream == "" {
		ns, err := firstNameserver(resolvConf)
		if err != nil {
			return fmt.Errorf("dns: finding a default upstream (set Upstream): %w", err)
		}
		c.Upstream, source = ns, "the first nameserver of "+resolvConf
	}
	up, err := normalizeUpstream(c.Upstream)
	if err != nil {
		return fmt.Errorf("dns: parsing upstream %q from %s: %w", c.Upstream, source, err)
	}
	c.Upstream = up
	if !c.forwardOnly && isSelf(up, c.Listen) {
		return fmt.Errorf("dns: upstream %s (%s) is this server itself; set Upstream to another resolver", up, source)
	}
	return nil
}

// normalizeUpstream returns upstream as "ip:port", adding port 53 when it
// has none.
func normalizeUpstream(upstream string) (string, error) {
	host, port, err := net.SplitHostPort(upstream)
	if err != nil {
		host, port = strings.Trim(upstream, "[]"), "53"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("upstream must be an IP address: %w", err)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// firstNameserver returns the address of the first "nameserver" line of a
// resolv.conf file.
func firstNameserver(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return "", fmt.Errorf("no nameserver line in %s", path)
}

// isSelf reports whether upstream ("ip:port") is the address this server
// listens on: the same port, and the same IP or (listening on the
// unspecified address) an IP of this host.
func isSelf(upstream, listen string) bool {
	uh, up, err1 := net.SplitHostPort(upstream)
	lh, lp, err2 := net.SplitHostPort(listen)
	if err1 != nil || err2 != nil || up != lp {
		return false
	}
	uip, err := netip.ParseAddr(uh)
	if err != nil {
		return false
	}
	uip = uip.Unmap().WithZone("")
	if lh == "" {
		lh = "0.0.0.0"
	}
	lip, err := netip.ParseAddr(lh)
	if err != nil { // a host name: cannot tell
		return false
	}
	if lip = lip.Unmap(); !lip.IsUnspecified() {
		return lip == uip
	}
	if uip.IsLoopback() || uip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == uip {
			return true
		}
	}
	return false
}

// matcher decides which names are intercepted.
type matcher struct {
	patterns []string // lower case, no trailing dot; nil means all
}

func newMatcher(patterns []string) matcher {
	var m matcher
	for _, p := range patterns {
		m.patterns = append(m.patterns, canonical(p))
	}
	return m
}

// match reports whether name (canonical: lower case, no trailing dot) is
// intercepted.
func (m matcher) match(name string) bool {
	if m.patterns == nil {
		return true
	}
	for _, p := range m.patterns {
		if glob(p, name) {
			return true
		}
	}
	return false
}

// canonical returns name in lower case without its trailing dot, the form
// SNI uses.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// glob matches s against pattern, where '*' matches any run of bytes and
// '?' any one byte.
func glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0 // last '*' in pattern and where in s it started matching
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
