package inspect

import (
	"slices"
	"strings"
	"testing"
)

// portRecords: one client's connections to three origins on one name, as
// the proxy records them (target with its port, server_addr the same), a
// default-port origin, an SNI-routed connection, and capture records that
// carry only the server's address.
func portRecords() []*ConnRecord {
	proxied := func(id, target string) *ConnRecord {
		return &ConnRecord{Record: Record{Source: SourceConnect, ClientAddr: "127.0.0.1:5" + id[1:], ServerAddr: target, SNI: "localhost",
			ClientHello: &ClientHelloRecord{Attempt: AttemptNone, JA4: "t13d311000_e8f1e7e78f70_1f22a2ca17c4"}},
			ID: id, Target: target}
	}
	captured := func(id, server, sni string) *ConnRecord {
		return &ConnRecord{Record: Record{Source: SourcePcap, ClientAddr: "[::1]:40000", ServerAddr: server, SNI: sni,
			ClientHello: &ClientHelloRecord{Attempt: AttemptNone, JA4: "t13d311000_e8f1e7e78f70_1f22a2ca17c4"}}, ID: id}
	}
	return []*ConnRecord{
		proxied("c1", "localhost:9444"),
		proxied("c2", "localhost:9445"),
		proxied("c3", "localhost:9447"),
		proxied("c4", "localhost:9444"),
		proxied("c5", "localhost:443"),
		{Record: Record{Source: SourceSNI, ClientAddr: "10.0.0.2:1", SNI: "api.test"}, ID: "c6", Target: "api.test:443"},
		captured("p1", "[::1]:9444", ""),
		captured("p2", "[::1]:443", ""),
		captured("p3", "127.0.0.1:9445", "localhost"),
	}
}

// TestHostOfPorts: a host is its name and, unless it is 443, its port:
// origins on one name and different ports keep their own sessions (a
// session cache is keyed by name, address and port), so they are not one
// host.
func TestHostOfPorts(t *testing.T) {
	var got []string
	for _, r := range portRecords() {
		got = append(got, HostOf(r))
	}
	want := []string{"localhost:9444", "localhost:9445", "localhost:9447", "localhost:9444", "localhost", "api.test", "[::1]:9444", "::1", "localhost:9445"}
	if !slices.Equal(got, want) {
		t.Errorf("HostOf:\n got %q\nwant %q", got, want)
	}
	var rows []string
	for _, s := range Summarize(portRecords()) {
		rows = append(rows, s.Host+" "+strings.Repeat("x", s.Conns))
	}
	wantRows := []string{"localhost:9444 xx", "localhost:9445 x", "localhost:9447 x", "localhost x", "api.test x", "[::1]:9444 x", "::1 x", "localhost:9445 x"}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("summary rows:\n got %q\nwant %q", rows, wantRows)
	}
}

// TestSelectorHostPort: host=NAME selects every port of the name,
// host=NAME:PORT one port (443 included, which HostOf leaves out), and an
// IPv6 address is selected with or without its brackets.
func TestSelectorHostPort(t *testing.T) {
	for _, tt := range []struct{ sel, want string }{
		{"host=localhost:9445", "c2,p3"},
		{"host=localhost:9444", "c1,c4"},
		{"host=localhost", "c1,c2,c3,c4,c5,p3"},
		{"host=localhost:443", "c5"},
		{"host=api.test:443", "c6"},
		{"host=localhost:94", "c1,c2,c3,c4,p3"}, // a prefix, as every value is
		{"host=[::1]:9444", "p1"},
		{"host=::1", "p1,p2"},
		{"host=[::1]:443", "p2"},
	} {
		t.Run(tt.sel, func(t *testing.T) {
			sel, err := ParseSelector(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range Select(portRecords(), sel) {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, ","); got != tt.want {
				t.Errorf("selects %q, want %q", got, tt.want)
			}
		})
	}
}
