package inspect

import (
	"strings"
	"testing"
)

// selectorRecords: a proxy connection from curl, one from an app on Apple's
// stack, and a capture record with no SNI or User-Agent.
func selectorRecords() []*ConnRecord {
	return []*ConnRecord{
		{Record: Record{Source: SourceConnect, ClientAddr: "10.0.0.5:50001", SNI: "api.example.com",
			ClientHello: &ClientHelloRecord{JA4: "t13d3113h2_e8f1e7e78f70_ac6b91b2c826"}},
			ID: "c1", UserAgent: "curl/8.5.0", Verdict: Verdict{Code: CodeFirstContact, Client: CodeClientFirstContact, Upstream: CodeUpstreamFirstContact}},
		{Record: Record{Source: SourceConnect, ClientAddr: "10.0.0.50:50002", SNI: "API.example.com",
			ClientHello: &ClientHelloRecord{JA4: "t13d2613h2_2802a3db6c62_845d286b0d67"}},
			ID: "c12", UserAgent: "MyApp/1.0 CFNetwork/1494 Darwin/23.0", Verdict: Verdict{Code: CodeClientOfferedNothing, Client: CodeClientOfferedNothing, Upstream: CodeUpstreamResumed}},
		{Record: Record{Source: SourcePcap, ClientAddr: "[2001:db8::7]:443", ServerAddr: "192.0.2.1:443",
			ClientHello: &ClientHelloRecord{JA4: "t12d2010h2_2a284e3b0c56_f05fdf8c38a9"}},
			ID: "p3"},
		{Record: Record{Source: SourceConnect, ClientAddr: "10.0.0.5:50003", Error: "truncated"}, ID: "c2", Target: "broken.test:443",
			Verdict: Verdict{Code: CodeClientNoHello}},
	}
}

// TestSelector: which records each selector picks, by connection id.
func TestSelector(t *testing.T) {
	recs := selectorRecords()
	for _, tt := range []struct {
		sel  string
		want string // ids, comma-separated
	}{
		{"", "c1,c12,p3,c2"},
		{" , ", "c1,c12,p3,c2"},
		{"program=curl", "c1"},
		{"program=CURL/8", "c1"},
		{"program=myapp/1.0 cfnetwork", "c12"},
		{"program=t12d20", "p3"}, // no User-Agent: the JA4 label
		{"program=?", "c2"},      // neither
		{"ja4=t13d", "c1,c12"},
		{"ja4=T13D3113H2_", "c1"},
		{"client=10.0.0.5", "c1,c2"}, // a whole address: not 10.0.0.50
		{"client=10.0.0.", "c1,c12,c2"},
		{"client=::ffff:10.0.0.5", "c1,c2"},
		{"client=2001:db8::7", "p3"},
		{"host=api.example", "c1,c12"},
		{"host=192.0.2.1", "p3"}, // no SNI: the server address
		{"host=broken", "c2"},    // no SNI: the target
		{"conn=c1", "c1"},        // exact: not c12
		{"conn=C12", "c12"},
		{"source=pcap", "p3"},
		{"source=c", "c1,c12,c2"},
		{"verdict=client_offered", "c12"},
		{"verdict=upstream_resumed", "c12"}, // a leg's code
		{"verdict=client_", "c1,c12,c2"},
		{"program=curl,host=api", "c1"},
		{"program=curl, host=other", ""},
		{" Program = curl ,", "c1"},
	} {
		t.Run(tt.sel, func(t *testing.T) {
			sel, err := ParseSelector(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range Select(recs, sel) {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, ","); got != tt.want {
				t.Errorf("selects %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseSelectorErrors: every error names the selector and what is
// wrong with it.
func TestParseSelectorErrors(t *testing.T) {
	for _, tt := range []struct{ sel, want string }{
		{"foo=1", `inspect: selector "foo=1": unknown key "foo" (want program, ja4, client, host, conn, source, verdict, transport, device)`},
		{"curl", `inspect: selector "curl": term "curl" is not key=value (e.g. program=curl)`},
		{"program=", `inspect: selector "program=": program= has no value`},
		{"host=a,host=b", `inspect: selector "host=a,host=b": host= given twice (every term must hold, so one value is enough)`},
		{"program=curl,=x", `inspect: selector "program=curl,=x": unknown key "" (want program, ja4, client, host, conn, source, verdict, transport, device)`},
	} {
		_, err := ParseSelector(tt.sel)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseSelector(%q) = %v, want %s", tt.sel, err, tt.want)
		}
	}
}

// TestSelectorString: the canonical form reads back to itself.
func TestSelectorString(t *testing.T) {
	sel, err := ParseSelector(" PROGRAM=MyApp/1.0 CFNetwork , conn=c1,,")
	if err != nil {
		t.Fatal(err)
	}
	if got := sel.String(); got != "program=MyApp/1.0 CFNetwork,conn=c1" {
		t.Errorf("String() = %q", got)
	}
}

// FuzzParseSelector: any text parses or fails without panicking; what
// parses prints a canonical form that parses back to the same selector and
// selects the same records.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"program=curl", "ja4=t13d,client=10.0.0.5", "host=API.example.com , conn=c12",
		"source=pcap,verdict=client_", "client=::ffff:10.0.0.5", "curl", "foo=1", "program=", "a=b=c", ",,", "conn=c1,conn=c2"} {
		f.Add(s)
	}
	recs := selectorRecords()
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "inspect: selector ") {
				t.Fatalf("error without its prefix: %v", err)
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", sel.String(), s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("canonical form %q reads back as %q", sel.String(), again.String())
		}
		for _, r := range recs {
			if sel.Match(r) != again.Match(r) {
				t.Fatalf("%q and its canonical form %q select %s differently", s, sel.String(), r.ID)
			}
		}
	})
}
