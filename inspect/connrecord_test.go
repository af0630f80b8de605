package inspect

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCappedRequestsAndCertificate: a record's requests and the origin's
// certificate are cut to their caps like its other free text; entries
// within them are left as they are, and the original is never changed.
func TestCappedRequestsAndCertificate(t *testing.T) {
	long := strings.Repeat("p", 70000)
	reqs := make([]Request, MaxRequests)
	for i := range reqs {
		reqs[i] = Request{Method: "GET", Authority: "a.test", Path: "/ok", Status: 200}
	}
	reqs[3] = Request{Method: long, Authority: long, Path: "/" + long, Status: 200}
	names := make([]string, 200)
	for i := range names {
		names[i] = long
	}
	orig := &ConnRecord{Requests: reqs, UpstreamLeg: &UpstreamLeg{Certificate: &Certificate{
		Subject: "CN=" + long, Issuer: "CN=ca", Names: names, VerifyError: "x509: " + long}}}
	before, _ := json.Marshal(orig)
	got := orig.Capped()
	if after, _ := json.Marshal(orig); string(before) != string(after) {
		t.Fatal("Capped changed the record it was given")
	}
	r := got.Requests[3]
	for name, v := range map[string]string{"method": r.Method, "authority": r.Authority, "path": r.Path} {
		if len(v) > MaxNameLen || !strings.HasSuffix(v, "bytes]") {
			t.Errorf("requests[3].%s: %d bytes, want at most %d and the cut mark", name, len(v), MaxNameLen)
		}
	}
	if got.Requests[2] != reqs[2] || &got.Requests[2] == &reqs[2] {
		t.Error("a request within its caps changed, or the original's list was written")
	}
	c := got.UpstreamLeg.Certificate
	if len(c.Subject) > MaxTextLen || len(c.VerifyError) > MaxTextLen || c.Issuer != "CN=ca" || len(c.Names) != MaxListLen || len(c.Names[0]) > MaxNameLen {
		t.Errorf("certificate: subject %d bytes, verify_error %d, %d names of %d bytes", len(c.Subject), len(c.VerifyError), len(c.Names), len(c.Names[0]))
	}
	if again := got.Capped(); again != got {
		t.Error("a capped record was cut again")
	}
	short := &ConnRecord{Requests: reqs[:3], UpstreamLeg: &UpstreamLeg{Certificate: &Certificate{Subject: "CN=a"}}}
	if short.Capped() != short {
		t.Error("a record with nothing too long was copied")
	}
	worst := make([]Request, MaxRequests)
	for i := range worst {
		worst[i] = reqs[3]
	}
	line, _ := json.Marshal((&ConnRecord{Requests: worst}).Capped())
	if len(line) > 20<<10 {
		t.Errorf("a record of %d hostile requests is %d bytes of JSON", MaxRequests, len(line))
	}
}
