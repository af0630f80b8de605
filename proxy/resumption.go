package proxy

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// ResumptionRule says what tlsresume does with a ticket of its own that a
// client offers (--client-resumption): allow it (the default), refuse it
// (a full handshake, as a server that lost its session cache does), or
// refuse it once it is older than ExpireAfter (an Apple-like 10-minute
// cache boundary, crossed in minutes instead of hours). It lets a QA team
// see what an app does when resumption fails, without touching the server.
type ResumptionRule struct {
	// Host is a glob (path.Match, case-insensitive) on the SNI, else the
	// target host; "" applies to every host that no other rule names.
	Host string
	// Refuse refuses every ticket.
	Refuse bool
	// ExpireAfter, when positive, refuses tickets older than it.
	ExpireAfter time.Duration
}

// refuses reports whether the rule refuses a ticket of this age.
func (r ResumptionRule) refuses(age time.Duration) bool {
	return r.Refuse || (r.ExpireAfter > 0 && age > r.ExpireAfter)
}

// mode is the rule's action as the flag spells it.
func (r ResumptionRule) mode() string {
	switch {
	case r.Refuse:
		return "refuse"
	case r.ExpireAfter > 0:
		return "expire-after=" + r.ExpireAfter.String()
	}
	return "allow"
}

// String is the rule as the flag spells it, for records: "refuse",
// "api.example.com=expire-after=10m0s".
func (r ResumptionRule) String() string {
	if r.Host == "" {
		return "--client-resumption " + r.mode()
	}
	return "--client-resumption " + r.Host + "=" + r.mode()
}

// ParseResumptionRules parses --client-resumption: comma-separated rules,
// each "MODE" (every host) or "HOST=MODE", where MODE is allow, refuse or
// expire-after=DURATION. For example "expire-after=10m,api.example.com=refuse".
func ParseResumptionRules(s string) ([]ResumptionRule, error) {
	var out []ResumptionRule
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, mode := "", item
		if h, m, ok := strings.Cut(item, "="); ok && h != "expire-after" {
			host, mode = strings.ToLower(h), m
			if _, err := path.Match(host, ""); err != nil {
				return nil, fmt.Errorf("proxy: --client-resumption %q: bad host pattern: %v", item, err)
			}
		}
		r := ResumptionRule{Host: host}
		switch {
		case mode == "allow":
		case mode == "refuse":
			r.Refuse = true
		case strings.HasPrefix(mode, "expire-after="):
			d, err := time.ParseDuration(strings.TrimPrefix(mode, "expire-after="))
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("proxy: --client-resumption %q: want expire-after=DURATION, e.g. expire-after=10m", item)
			}
			r.ExpireAfter = d
		default:
			return nil, fmt.Errorf("proxy: --client-resumption %q: want allow, refuse or expire-after=DURATION, optionally after HOST=", item)
		}
		out = append(out, r)
	}
	return out, nil
}

// resumptionRule is the rule for host: the first rule naming it, else the
// rule for every host, else allow.
func resumptionRule(rules []ResumptionRule, host string) ResumptionRule {
	host = strings.ToLower(host)
	var all ResumptionRule
	for _, r := range rules {
		if r.Host == "" {
			all = r
			continue
		}
		if ok, _ := path.Match(r.Host, host); ok {
			return r
		}
	}
	return all
}
