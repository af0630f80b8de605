package certs

import (
	"fmt"
	"net/netip"
	"strings"
)

// normalizeName returns the canonical form of a DNS name or IP address for
// a leaf's SAN and the cache key: DNS names lower case without a trailing
// dot, IP addresses in netip's canonical text without zone or brackets. It
// does not allocate when name is already canonical, which keeps a cached
// lookup free of allocations.
func normalizeName(name string) (string, error) {
	s := name
	// "example.com." is the absolute form of the same name (RFC 1034
	// section 3.1); SNI never carries the dot (RFC 6066 section 3).
	s = strings.TrimSuffix(s, ".")
	// "[::1]" is how URLs and CONNECT lines write an IPv6 host.
	bracketed := len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']'
	if bracketed {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return "", fmt.Errorf("certs: empty host name in %q", name)
	}
	if bracketed || looksLikeIP(s) {
		return normalizeIP(s, name)
	}
	upper := false
	for j := 0; j < len(s); j++ {
		c := s[j]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '.':
			if j == 0 || s[j-1] == '.' || j == len(s)-1 {
				return "", fmt.Errorf("certs: host name %q has an empty label", name)
			}
		case c == '*' && j == 0 && len(s) > 2 && s[1] == '.':
			// A wildcard is allowed as the whole leftmost label only
			// (RFC 6125 section 6.4.3, CA/B Forum BR 7.1.4.2).
		case c >= 0x80:
			return "", fmt.Errorf("certs: host name %q is not ASCII; pass its punycode (xn--) form", name)
		default:
			return "", fmt.Errorf("certs: %q is not a host name or IP address (byte %q at offset %d; strip any port)", name, c, j)
		}
	}
	if upper {
		s = strings.ToLower(s)
	}
	return s, nil
}

// looksLikeIP reports whether s can only be meant as an IP address: it has a
// colon (IPv6) or only digits and dots. Checking first keeps DNS names that
// start with a digit off netip's error path, which allocates.
func looksLikeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for j := 0; j < len(s); j++ {
		if c := s[j]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// normalizeIP parses s as an IP address and returns its canonical text;
// name is the caller's input, for the error.
func normalizeIP(s, name string) (string, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("certs: %q is not a host name or IP address (strip any port): %w", name, err)
	}
	// A zone ("fe80::1%eth0") is local to this machine and cannot be in a
	// certificate; an IPv4-mapped IPv6 address is the IPv4 address.
	addr = addr.WithZone("").Unmap()
	var buf [64]byte
	canon := addr.AppendTo(buf[:0])
	if string(canon) == s {
		return s, nil
	}
	return string(canon), nil
}

// UsableNames splits names into those a leaf can carry, as [Issuer.LeafFor]
// takes them (DNS names, a wildcard only as the whole leftmost label, IP
// addresses), and those it cannot: an origin's certificate may carry a SAN
// with a space, a stray byte or an empty label, which would otherwise make
// LeafFor refuse the whole set. Both keep the order and spelling of names;
// usable is names itself when every name is.
func UsableNames(names []string) (usable, unusable []string) {
	for i, n := range names {
		if _, err := normalizeName(n); err == nil {
			if unusable != nil {
				usable = append(usable, n)
			}
			continue
		}
		if unusable == nil {
			usable = append(make([]string, 0, len(names)-1), names[:i]...)
		}
		unusable = append(unusable, n)
	}
	if unusable == nil {
		return names, nil
	}
	return usable, unusable
}
