package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/proxy"
	"github.com/tlsresume/tlsresume/proxy/dns"
	"github.com/tlsresume/tlsresume/proxy/upstream"
)

// proxyFlags are the proxy's settings; YAML config keys are the flag names.
type proxyFlags struct {
	listen, allow, auth, logFile, keylog, caDir         string
	clientTickets, clientMax, clientMin                 string
	upstreamCA, upstreamCacheFile                       string
	upstreamCacheSize, maxConns                         int
	upstreamTTL, grace, ticketRotation, idleTimeout     time.Duration
	upstreamTickets, insecureUpstream, jsonLog, verbose bool
	config                                              string
	transparent, sniListen, httpListen, passthrough     string
	dnsListen, dnsAnswer, dnsAnswer6, dnsUpstream       string
	intercept                                           string
	dnsSrv                                              *dns.Server      // built from the dns flags, started by run
	recordLog                                           *proxy.RecordLog // --log, opened by build, fed by run
	cache                                               *upstream.Cache  // the upstream session cache, made by build
	autoPassthrough                                     bool
	web                                                 webFlags
	clientResumption, sessionIDClients, clientAuth      string
	upstreamReuse                                       string
	mirror                                              string
	upstreamCerts                                       identityFlags
	rotateKeys, forgetKeys                              bool
	wg                                                  wireguardFlags
}

func (p *proxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.listen, "listen", "127.0.0.1:8080", "`address` to listen on, e.g. --listen 0.0.0.0:8080 (a non-loopback address needs --allow)")
	fs.StringVar(&p.allow, "allow", "", "client `networks` allowed, comma-separated CIDRs, e.g. --allow 192.168.1.0/24,10.0.0.5/32 (default: loopback only)")
	fs.StringVar(&p.auth, "auth", "", "require Proxy-Authorization basic `user:pass`, e.g. --auth qa:secret")
	fs.StringVar(&p.logFile, "log", "", "append one JSON record per connection to `file`, e.g. --log conns.jsonl")
	fs.StringVar(&p.keylog, "keylog", "", "write NSS key log lines for both legs to `file` (Wireshark decrypts both), e.g. --keylog keys.log")
	fs.StringVar(&p.caDir, "ca-dir", "", "CA `directory` (default $TLSRESUME_HOME, else the user config directory's tlsresume folder), e.g. --ca-dir ~/tlsresume-ca")
	fs.StringVar(&p.clientTickets, "client-tickets", "mirror", "issue session tickets to clients: `mirror` (as the origin does), true or false, e.g. --client-tickets=false")
	fs.StringVar(&p.clientMax, "client-max-tls", "", "highest TLS `version` offered to clients, 1.2 or 1.3 (default: the origin's negotiated version), e.g. --client-max-tls 1.2")
	fs.StringVar(&p.clientMin, "client-min-tls", "1.0", "lowest TLS `version` accepted from clients, e.g. --client-min-tls 1.2")
	fs.StringVar(&p.upstreamCA, "upstream-ca", "", "also trust the CA certificates in `file` (PEM) for origins, e.g. --upstream-ca lab-ca.pem")
	fs.BoolVar(&p.insecureUpstream, "insecure-upstream", false, "do not verify origin certificates (recorded in every record), e.g. --insecure-upstream")
	fs.BoolVar(&p.upstreamTickets, "upstream-tickets", true, "resume upstream with tlsresume's own session cache, e.g. --upstream-tickets=false")
	fs.IntVar(&p.upstreamCacheSize, "upstream-cache-size", 1024, "upstream session cache `entries` (LRU), e.g. --upstream-cache-size 4096")
	fs.DurationVar(&p.upstreamTTL, "upstream-ticket-ttl", 10*time.Minute, "upstream sessions expire after `duration` (Apple's cache: about 10 minutes), e.g. --upstream-ticket-ttl 1h")
	fs.StringVar(&p.upstreamCacheFile, "upstream-cache-file", "", "keep upstream sessions in `file` (0600) across restarts, e.g. --upstream-cache-file upstream.cache")
	fs.IntVar(&p.maxConns, "max-conns", 1024, "cap on concurrent client `connections`, e.g. --max-conns 256")
	fs.DurationVar(&p.idleTimeout, "idle-timeout", 5*time.Minute, "close a client connection when no byte moved either way for `duration`, in every state, e.g. --idle-timeout 30s")
	fs.DurationVar(&p.grace, "grace", 5*time.Second, "on SIGINT/SIGTERM, let open connections finish for `duration`, e.g. --grace 30s")
	fs.DurationVar(&p.ticketRotation, "ticket-rotation", 24*time.Hour, "start encrypting client tickets with a new key every `duration`, e.g. --ticket-rotation 1h")
	fs.BoolVar(&p.jsonLog, "log-json", false, "console log as JSON lines instead of text, e.g. --log-json")
	fs.BoolVar(&p.verbose, "v", false, "debug logging, e.g. -v")
	fs.StringVar(&p.transparent, "transparent", "", "also accept kernel-redirected connections on `address` (iptables/nft REDIRECT or TPROXY; Linux), e.g. --transparent 0.0.0.0:8443")
	fs.StringVar(&p.sniListen, "sni-listen", "", "also accept TLS routed here by DNS on `address`, sent on by SNI to port 443, e.g. --sni-listen 0.0.0.0:443")
	fs.StringVar(&p.httpListen, "http-listen", "", "also accept plain HTTP routed here by DNS on `address`, sent on by Host header, e.g. --http-listen 0.0.0.0:80")
	fs.StringVar(&p.dnsListen, "dns", "", "answer DNS on `address` (UDP and TCP), pointing intercepted names at --dns-answer, e.g. --dns 0.0.0.0:53")
	fs.StringVar(&p.dnsAnswer, "dns-answer", "", "the proxy's IPv4 `address` given for intercepted names (the laptop's LAN address), e.g. --dns-answer 192.168.1.20")
	fs.StringVar(&p.dnsAnswer6, "dns-answer6", "", "the proxy's IPv6 `address` for AAAA answers (default: empty answers, so clients use IPv4), e.g. --dns-answer6 fd00::20")
	fs.StringVar(&p.intercept, "intercept", "", "names to intercept, comma-separated `globs` (default: all), e.g. --intercept '*.example.com,api.test'")
	fs.StringVar(&p.dnsUpstream, "dns-upstream", "", "resolver `ip:port` for names not intercepted and for tlsresume's own lookups (default: the system's, unless that is tlsresume), e.g. --dns-upstream 1.1.1.1:53")
	fs.StringVar(&p.passthrough, "passthrough", "", "relay these host `globs` untouched (both hellos still recorded), comma-separated, e.g. --passthrough '*.apple.com,pinned.example'")
	fs.BoolVar(&p.autoPassthrough, "auto-passthrough", false, "pass a host through once a client rejected tlsresume's certificate for it (pinning), e.g. --auto-passthrough")
	fs.StringVar(&p.clientResumption, "client-resumption", "", "what to do with tlsresume's own tickets that clients offer: `rules` allow, refuse or expire-after=DURATION, optionally per HOST=, comma-separated, e.g. --client-resumption 'expire-after=10m,api.example.com=refuse'")
	fs.StringVar(&p.clientAuth, "client-auth", "mirror", "ask clients for a certificate: `mirror` (when the origin asked tlsresume), request, require or none; any certificate is accepted and recorded, e.g. --client-auth request")
	fs.Var(&p.upstreamCerts, "upstream-client-cert", "a client `identity` to present to origins that ask, PATTERN=CERT.pem,KEY.pem, repeatable; a client that presents one of these is mirrored with it, e.g. --upstream-client-cert 'api.example.com=alice.pem,alice-key.pem'")
	fs.StringVar(&p.upstreamReuse, "upstream-reuse", "pair", "upstream connections: `pair` (one per client connection, each with its own handshake: every record pairs the two) or pool (requests of many client connections share a bounded pool per origin: throughput over pairing; records say whose connection carried them), e.g. --upstream-reuse pool")
	fs.StringVar(&p.mirror, "mirror", "overlap", "when a client is answered: `overlap` (a client of an origin that answered the same offer before is answered like it was, while its own upstream handshake runs; records name that connection, mirrored.from, and any difference, mirrored.mismatch) or wait (every client waits for its own upstream handshake: slower); early is overlap's old name, e.g. --mirror wait")
	fs.StringVar(&p.sessionIDClients, "session-id-clients", "passthrough", "clients that resume only by session ID (TLS 1.2 without session_ticket), which Go's TLS server cannot resume: `passthrough` (they resume against the real server; their HTTP is not seen) or intercept, e.g. --session-id-clients intercept")
	fs.BoolVar(&p.rotateKeys, "rotate-ticket-keys", false, "start encrypting client tickets under a new key now (earlier tickets still resume), e.g. --rotate-ticket-keys")
	fs.BoolVar(&p.forgetKeys, "forget-ticket-keys", false, "start with a new client ticket key and forget the old ones (no earlier ticket resumes), e.g. --forget-ticket-keys")
	p.web.register(fs)
	p.wg.register(fs)
	fs.StringVar(&p.config, "config", "", "YAML `file` with the same keys as these flags (flags win), e.g. --config configs/tlsresume.yaml")
}

// checkNumbers refuses numeric settings out of range, before anything is
// opened or listened on.
func (p *proxyFlags) checkNumbers() error {
	for _, n := range []struct {
		flag string
		v    int
	}{{"--max-conns", p.maxConns}, {"--upstream-cache-size", p.upstreamCacheSize}} {
		if n.v < 1 {
			return fmt.Errorf("%s %d: want a positive number", n.flag, n.v)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--upstream-ticket-ttl", p.upstreamTTL}, {"--idle-timeout", p.idleTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%s %v: want a positive duration", d.flag, d.v)
		}
	}
	if p.ticketRotation < proxy.MinTicketRotation {
		return fmt.Errorf("--ticket-rotation %v: want at least %v (each rotation rewrites the key file and adds a key kept for up to 7 days)", p.ticketRotation, proxy.MinTicketRotation)
	}
	if p.grace < 0 {
		return fmt.Errorf("--grace %v: want zero or a positive duration", p.grace)
	}
	return nil
}

// checkAddrs parses --allow and refuses a listen address other machines
// could reach without it: run before anything is bound.
func (p *proxyFlags) checkAddrs() ([]netip.Prefix, error) {
	var allow []netip.Prefix
	for _, s := range splitList(p.allow) {
		pre, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--allow %q: %v", s, err)
		}
		allow = append(allow, pre)
	}
	for _, l := range []struct{ flag, addr string }{
		{"--listen", p.listen}, {"--transparent", p.transparent}, {"--sni-listen", p.sniListen}, {"--http-listen", p.httpListen},
		{"--dns", p.dnsListen},
	} {
		if l.addr == "" {
			continue
		}
		a, port, err := listenAddr(l.addr)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want ip:port or :port, e.g. %[1]s 127.0.0.1:8080 (this machine) or %[1]s 0.0.0.0:8080 --allow 192.168.1.0/24 (a LAN)", l.flag, l.addr)
		}
		if !a.IsLoopback() && len(allow) == 0 {
			return nil, fmt.Errorf("%s %s is reachable from other machines: name the clients with --allow (tlsresume is never an open proxy), "+
				"e.g. %[1]s %[2]s --allow 192.168.1.0/24; or %[1]s 127.0.0.1:%[3]d for this machine only", l.flag, l.addr, port)
		}
	}
	return allow, nil
}

// listenAddr reads a listen address: ip:port, :port (every address, as
// Go listens on it) or localhost:port.
func listenAddr(s string) (netip.Addr, uint16, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	switch host {
	case "":
		return netip.IPv6Unspecified(), uint16(p), nil
	case "localhost":
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(p), nil
	}
	a, err := netip.ParseAddr(host)
	return a, uint16(p), err
}

func ticketsMode(s string) (string, error) {
	switch strings.ToLower(s) {
	case "mirror", "":
		return "mirror", nil
	case "true", "on", "1":
		return "on", nil
	case "false", "off", "0":
		return "off", nil
	}
	return "", fmt.Errorf("--client-tickets %q: want mirror, true or false", s)
}

func tlsVersion(flagName, s string) (uint16, error) {
	switch s {
	case "":
		return 0, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%s %q: want 1.0, 1.1, 1.2 or 1.3", flagName, s)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// newLogger writes for people (proxy.ConsoleWriter: zerolog's console
// writer, what peers chose shown escaped; colours only on a terminal) or,
// with --log-json, for machines (JSON, true values), on stderr.
func newLogger(w io.Writer, jsonOut, verbose bool) zerolog.Logger {
	level := zerolog.InfoLevel
	if verbose {
		level = zerolog.DebugLevel
	}
	if !jsonOut {
		w = proxy.ConsoleWriter(w, !isTerminal(w))
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// isTerminal says whether w is a terminal (a character device): a file or
// a pipe gets no colour codes.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// identityFlags is --upstream-client-cert, repeatable: each value is
// PATTERN=CERT.pem,KEY.pem, and a YAML list arrives as such values joined
// by commas.
type identityFlags []string

func (f *identityFlags) String() string { return strings.Join(*f, ",") }

func (f *identityFlags) Set(v string) error {
	parts := splitList(v)
	for len(parts) > 0 {
		if len(parts) < 2 || !strings.Contains(parts[0], "=") || strings.Contains(parts[1], "=") {
			return fmt.Errorf("want PATTERN=CERT.pem,KEY.pem, e.g. api.example.com=alice.pem,alice-key.pem")
		}
		*f = append(*f, parts[0]+","+parts[1])
		parts = parts[2:]
	}
	return nil
}

// identities loads each PATTERN=CERT.pem,KEY.pem.
func (f identityFlags) identities() ([]proxy.UpstreamIdentity, error) {
	var out []proxy.UpstreamIdentity
	for _, v := range f {
		spec, keyFile, _ := strings.Cut(v, ",")
		pattern, certFile, _ := strings.Cut(spec, "=")
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--upstream-client-cert %s=%s,%s: %w", pattern, certFile, keyFile, err)
		}
		out = append(out, proxy.UpstreamIdentity{Pattern: pattern, Cert: cert})
	}
	return out, nil
}
