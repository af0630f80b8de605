package inspect

import (
	"net"
	"strings"
)

// ProgramName names the program behind a User-Agent by the product token
// that identifies it: "curl/8.5.0", "MyApp/1.0 CFNetwork/1494", and for
// browsers, whose User-Agents all start with "Mozilla/5.0", the browser and
// its major version ("Chrome/131", "Firefox/128", "Safari/18.1", "Edge/131").
// It returns "" for an empty User-Agent.
func ProgramName(ua string) string {
	products := uaProducts(ua)
	if len(products) == 0 {
		return ""
	}
	first := products[0]
	if first.name != "Mozilla" {
		// An app on Apple's stack says "MyApp/1.0 CFNetwork/1494 Darwin/23.0":
		// the app names the program, CFNetwork the TLS stack's release.
		if cf, ok := findProduct(products, "CFNetwork"); ok && first.name != "CFNetwork" {
			return first.String() + " " + cf.String()
		}
		return first.String()
	}
	// Browsers: the most specific token wins (Edge and Opera also say
	// Chrome and Safari; Chrome also says Safari).
	for _, b := range []struct{ token, name string }{
		{"Edg", "Edge"}, {"EdgA", "Edge"}, {"EdgiOS", "Edge"}, {"OPR", "Opera"},
		{"SamsungBrowser", "SamsungBrowser"}, {"Firefox", "Firefox"}, {"FxiOS", "Firefox"},
		{"CriOS", "Chrome"}, {"Chrome", "Chrome"}, {"HeadlessChrome", "HeadlessChrome"},
	} {
		if p, ok := findProduct(products, b.token); ok {
			return b.name + "/" + major(p.version)
		}
	}
	if _, ok := findProduct(products, "Safari"); ok {
		// Safari's own version is in "Version/18.1"; "Safari/605.1.15" is WebKit's.
		if v, ok := findProduct(products, "Version"); ok {
			return "Safari/" + v.version
		}
		return "Safari"
	}
	if last := products[len(products)-1]; last.name != "Mozilla" {
		return last.String()
	}
	return first.String()
}

type uaProduct struct{ name, version string }

func (p uaProduct) String() string {
	if p.version == "" {
		return p.name
	}
	return p.name + "/" + p.version
}

// uaProducts splits a User-Agent into its product tokens (RFC 9110,
// Section 10.1.5), skipping comments in parentheses.
func uaProducts(ua string) []uaProduct {
	var out []uaProduct
	depth := 0
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			name, version, _ := strings.Cut(ua[start:end], "/")
			if name != "" {
				out = append(out, uaProduct{name, version})
			}
		}
		start = -1
	}
	for i := 0; i < len(ua); i++ {
		switch c := ua[i]; {
		case c == '(':
			flush(i)
			depth++
		case c == ')':
			depth = max(depth-1, 0)
		case depth > 0:
		case c == ' ' || c == '\t' || c == ',' || c == ';':
			flush(i)
		case start < 0:
			start = i
		}
	}
	if depth == 0 {
		flush(len(ua))
	}
	return out
}

func findProduct(ps []uaProduct, name string) (uaProduct, bool) {
	for _, p := range ps {
		if p.name == name {
			return p, true
		}
	}
	return uaProduct{}, false
}

func major(v string) string {
	if i := strings.IndexByte(v, '.'); i > 0 {
		return v[:i]
	}
	return v
}

// JA4Program names a client by its JA4 without the extension count and the
// extension hash: a resuming hello adds pre_shared_key, which changes both,
// while the client is the same program.
func JA4Program(ja4 string) string {
	if len(ja4) < 23 || ja4[10] != '_' {
		return ja4
	}
	return ja4[:6] + "··" + ja4[8:23]
}

// Program names the program of a record for reports and for the proxy's
// memory: its User-Agent's ProgramName, else its JA4Program, else "?".
func Program(r *ConnRecord) string {
	if p := ProgramName(r.UserAgent); p != "" {
		return p
	}
	if r.ClientHello != nil && r.ClientHello.JA4 != "" {
		return JA4Program(r.ClientHello.JA4)
	}
	return "?"
}

// HostOf names the host a record's connection went to: its SNI, else the
// name its WireGuard device looked up for the address (dns_name), else the
// target's host, else the server address's; then, unless it is 443, the
// port of the target, else of the server address ("localhost:9445",
// "[::1]:8443"). Origins on one name and different ports are different
// hosts: a session cache is keyed by name, address and port (Apple's too),
// so a session of one never resumes the other.
func HostOf(r *ConnRecord) string {
	name, port := hostPort(r)
	if port == "" || port == "443" {
		return name
	}
	return net.JoinHostPort(name, port)
}

// hostPort is the name and the port HostOf joins.
func hostPort(r *ConnRecord) (name, port string) {
	tname, tport := splitHostPort(r.Target)
	sname, sport := splitHostPort(r.ServerAddr)
	switch {
	case r.SNI != "":
		name = r.SNI
	case r.DNSName != "":
		name = r.DNSName
	case tname != "":
		name = tname
	default:
		name = sname
	}
	if port = tport; port == "" {
		port = sport
	}
	return name, port
}

// splitHostPort splits "host:port"; a value without a port is all host.
func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return s, ""
}
