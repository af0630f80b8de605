package inspect

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// A Selector picks records: "program=curl", "ja4=t13d", "client=10.0.0.5",
// "host=api.example.com", "conn=c12", "source=pcap", "verdict=client_",
// "transport=quic", "device=phone",
// joined by commas, every term must hold. The same text selects records on
// the command line (tlsresume diff --a, --b) and in the web view's API, so
// its grammar is a contract:
//
//   - a value matches a prefix of its field, ignoring case: program=curl
//     selects "curl/8.5.0";
//   - conn= and device= match exactly, ignoring case (as a prefix, c1
//     would select c12, and phone phone-2), and client= matches exactly
//     when its value is a whole IP address (10.0.0.5 must not select
//     10.0.0.50), as a prefix otherwise (client=10.0.0. selects a /24);
//   - verdict= matches the record's code or either leg's code;
//   - a value cannot contain a comma; spaces around keys and values are
//     trimmed, and empty terms are skipped.
//
// The fields are: program, [Program]; ja4, client_hello.ja4; client, the
// client's IP; host, [HostOf]: the SNI, else the target's host, else
// server_addr's, with the port unless it is 443 (host=localhost selects
// every port of localhost, host=localhost:9445 one of them,
// host=example.com:443 the default one); conn, id;
// source, source; transport, "tcp" or "quic"; device, the WireGuard
// device's name (exact). The zero Selector selects every record.
type Selector struct {
	terms []selectorTerm
}

type selectorTerm struct {
	key   string
	value string     // as written, for String
	lower string     // lower-cased, for matching
	addr  netip.Addr // client=: a whole address, matched exactly
}

// selectorKeys lists the keys in the order error messages name them.
var selectorKeys = []string{"program", "ja4", "client", "host", "conn", "source", "verdict", "transport", "device"}

// ParseSelector parses a selector (see [Selector]). An empty string, or one
// of commas and spaces only, is the zero Selector.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	for term := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(term) == "" {
			continue
		}
		key, value, ok := strings.Cut(term, "=")
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		switch {
		case !ok:
			return Selector{}, fmt.Errorf("inspect: selector %q: term %q is not key=value (e.g. program=curl)", s, strings.TrimSpace(term))
		case !validSelectorKey(key):
			return Selector{}, fmt.Errorf("inspect: selector %q: unknown key %q (want %s)", s, key, strings.Join(selectorKeys, ", "))
		case value == "":
			return Selector{}, fmt.Errorf("inspect: selector %q: %s= has no value", s, key)
		case sel.has(key):
			return Selector{}, fmt.Errorf("inspect: selector %q: %s= given twice (every term must hold, so one value is enough)", s, key)
		}
		t := selectorTerm{key: key, value: value, lower: strings.ToLower(value)}
		if key == "client" {
			if a, err := netip.ParseAddr(value); err == nil {
				t.addr = a.Unmap()
			}
		}
		sel.terms = append(sel.terms, t)
	}
	return sel, nil
}

func validSelectorKey(k string) bool {
	for _, v := range selectorKeys {
		if k == v {
			return true
		}
	}
	return false
}

func (s Selector) has(key string) bool {
	for _, t := range s.terms {
		if t.key == key {
			return true
		}
	}
	return false
}

// String returns the selector in its canonical form: keys lower-cased,
// terms in the order given, joined by commas. ParseSelector reads it back
// to the same Selector.
func (s Selector) String() string {
	parts := make([]string, len(s.terms))
	for i, t := range s.terms {
		parts[i] = t.key + "=" + t.value
	}
	return strings.Join(parts, ",")
}

// Match reports whether r satisfies every term.
func (s Selector) Match(r *ConnRecord) bool {
	for _, t := range s.terms {
		if !t.match(r) {
			return false
		}
	}
	return true
}

func (t selectorTerm) match(r *ConnRecord) bool {
	switch t.key {
	case "program":
		return t.prefixOf(Program(r))
	case "ja4":
		return r.ClientHello != nil && t.prefixOf(r.ClientHello.JA4)
	case "client":
		ip := clientIP(r.ClientAddr)
		if t.addr.IsValid() {
			a, err := netip.ParseAddr(ip)
			return err == nil && a.Unmap() == t.addr
		}
		return t.prefixOf(ip)
	case "host":
		return t.matchHost(r)
	case "conn":
		return strings.EqualFold(r.ID, t.value)
	case "device":
		return strings.EqualFold(r.Device, t.value)
	case "source":
		return t.prefixOf(string(r.Source))
	case "transport":
		return t.prefixOf(r.TransportName())
	case "verdict":
		v := r.Verdict
		return t.prefixOf(string(v.Code)) || t.prefixOf(string(v.Client)) || t.prefixOf(string(v.Upstream))
	}
	return false
}

// matchHost: the value is a prefix of the host as HostOf names it, of its
// name alone (so host=localhost selects every port, and host=::1 an IPv6
// address that HostOf bracketed), or of name:port with the port always
// there (so host=example.com:443 selects the default port).
func (t selectorTerm) matchHost(r *ConnRecord) bool {
	name, port := hostPort(r)
	if t.prefixOf(HostOf(r)) || t.prefixOf(name) {
		return true
	}
	return port != "" && t.prefixOf(net.JoinHostPort(name, port))
}

func (t selectorTerm) prefixOf(field string) bool {
	return strings.HasPrefix(strings.ToLower(field), t.lower)
}

// Select returns the records sel matches, in their order.
func Select(recs []*ConnRecord, sel Selector) []*ConnRecord {
	var out []*ConnRecord
	for _, r := range recs {
		if sel.Match(r) {
			out = append(out, r)
		}
	}
	return out
}
