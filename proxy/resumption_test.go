package proxy

import (
	"testing"
	"time"
)

// TestResumptionRules: --client-resumption parses into rules, a host's own
// rule wins over the rule for every host, and bad rules are refused.
func TestResumptionRules(t *testing.T) {
	rules, err := ParseResumptionRules(" expire-after=10m , *.Example.com=refuse, api.test=allow")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host string
		age  time.Duration
		want bool // refused
		rule string
	}{
		{"other.test", 9 * time.Minute, false, "--client-resumption expire-after=10m0s"},
		{"other.test", 11 * time.Minute, true, "--client-resumption expire-after=10m0s"},
		{"a.example.com", time.Second, true, "--client-resumption *.example.com=refuse"},
		{"API.test", time.Hour, false, "--client-resumption api.test=allow"},
	} {
		r := resumptionRule(rules, tt.host)
		if r.refuses(tt.age) != tt.want || r.String() != tt.rule {
			t.Errorf("%s, %v old: refused %v by %q, want %v by %q", tt.host, tt.age, r.refuses(tt.age), r, tt.want, tt.rule)
		}
	}
	if r := resumptionRule(nil, "x"); r.refuses(time.Hour) {
		t.Error("no rule refuses")
	}
	for _, bad := range []string{"maybe", "expire-after=soon", "expire-after=-1m", "host=", "[=refuse"} {
		if _, err := ParseResumptionRules(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
