package inspect

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// contractFields are the record's field names that other tools read
// (issue 3, "The record"); renaming one is a breaking change.
var contractFields = []string{
	"time", "source", "client_addr", "server_addr", "sni", "client_hello", "server_hello",
	"client_hello.legacy_version", "client_hello.random", "client_hello.session_id", "client_hello.session_id_len",
	"client_hello.cipher_suites", "client_hello.extensions", "client_hello.alpn", "client_hello.supported_versions",
	"client_hello.supported_groups", "client_hello.key_share_groups", "client_hello.signature_algorithms",
	"client_hello.session_ticket.offered", "client_hello.session_ticket.len",
	"client_hello.pre_shared_key.offered", "client_hello.pre_shared_key.identities",
	"client_hello.pre_shared_key.identities.len", "client_hello.pre_shared_key.identities.obfuscated_ticket_age",
	"client_hello.pre_shared_key.binders", "client_hello.psk_key_exchange_modes", "client_hello.early_data",
	"client_hello.extended_master_secret", "client_hello.ech", "client_hello.attempt",
	"client_hello.ja3", "client_hello.ja3_hash", "client_hello.ja4", "client_hello.ja4_r",
	"server_hello.version", "server_hello.cipher_suite", "server_hello.session_id", "server_hello.hrr",
	"server_hello.selected_psk", "server_hello.resumed", "server_hello.resumed_by",
}

// TestRecordContract marshals a real record and checks that every contract
// field is present under its exact name.
func TestRecordContract(t *testing.T) {
	recs := runConversation(t, nil, []step{
		c(hs(opensslResume.marshal())),
		s(hs(testServerHello(VersionTLS13, make([]byte, 32), false, testExt{ExtPreSharedKey, []byte{0, 0}}))),
	})
	b, err := json.Marshal(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	collectKeys(m, "", have)
	for _, f := range contractFields {
		if !have[f] {
			t.Errorf("record has no field %q", f)
		}
	}
	if m["server_hello"].(map[string]any)["resumed_by"] != "psk" {
		t.Errorf("resumed_by = %v", m["server_hello"].(map[string]any)["resumed_by"])
	}
}

func collectKeys(v any, prefix string, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			name := strings.TrimPrefix(prefix+"."+k, ".")
			out[name] = true
			collectKeys(e, name, out)
		}
	case []any:
		for _, e := range x {
			collectKeys(e, prefix, out)
		}
	}
}

// TestCapped: a record's free-text fields are cut to their caps and marked
// with the full length; short fields, and a record with nothing too long,
// are left as they are; the original record is never changed; and a cut
// record is not cut again.
func TestCapped(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n/2) } // 2 bytes a character: cuts must keep whole ones
	names := make([]string, 100)
	for i := range names {
		names[i] = "n.test"
	}
	orig := &ConnRecord{
		Record:      Record{SNI: long(70000), ClientAddr: "127.0.0.1:1", ClientHello: &ClientHelloRecord{ALPN: []string{"h2", long(1000)}, JA3: "771,4865"}},
		Target:      "host.test:443",
		UserAgent:   "curl/8.5.0 " + long(8<<20),
		ClientLeg:   &ClientLeg{Error: "x509: " + long(5000), ClientCert: &ClientCert{Subject: "CN=short"}},
		UpstreamLeg: &UpstreamLeg{Error: "ok"},
		Mirrored:    &Mirrored{Names: names, NamesLeftOut: []string{long(400)}},
	}
	before, _ := json.Marshal(orig)
	got := orig.Capped()
	after, _ := json.Marshal(orig)
	if string(before) != string(after) {
		t.Fatal("Capped changed the record it was given")
	}
	cases := []struct {
		name, value, prefix, mark string
		limit                     int
	}{
		{"user_agent", got.UserAgent, "curl/8.5.0 é", "…[cut: 8388619 bytes]", MaxUserAgentLen},
		{"sni", got.SNI, "éé", "…[cut: 70000 bytes]", MaxNameLen},
		{"client_hello.alpn[1]", got.ClientHello.ALPN[1], "éé", "…[cut: 1000 bytes]", MaxNameLen},
		{"client_leg.error", got.ClientLeg.Error, "x509: é", "…[cut: 5006 bytes]", MaxTextLen},
		{"mirrored.names_left_out[0]", got.Mirrored.NamesLeftOut[0], "éé", "…[cut: 400 bytes]", MaxNameLen},
	}
	for _, tc := range cases {
		if len(tc.value) > tc.limit || !strings.HasPrefix(tc.value, tc.prefix) || !strings.HasSuffix(tc.value, tc.mark) || !utf8.ValidString(tc.value) {
			t.Errorf("%s: %d bytes %q…%q, want at most %d ending %q", tc.name, len(tc.value), tc.value[:20], tc.value[len(tc.value)-30:], tc.limit, tc.mark)
		}
	}
	if n := len(got.Mirrored.Names); n != MaxListLen || got.Mirrored.Names[n-1] != "…[cut: 100 entries]" {
		t.Errorf("mirrored.names: %d entries ending %q, want %d ending with the cut mark", n, got.Mirrored.Names[n-1], MaxListLen)
	}
	if got.Target != orig.Target || got.ClientHello.JA3 != orig.ClientHello.JA3 || got.ClientLeg.ClientCert != orig.ClientLeg.ClientCert || got.UpstreamLeg != orig.UpstreamLeg {
		t.Error("fields within their caps were changed or copied")
	}
	if again := got.Capped(); again != got {
		t.Error("a capped record was cut again")
	}
	short := &ConnRecord{UserAgent: "curl/8.5.0", ClientLeg: &ClientLeg{Error: "eof"}}
	if short.Capped() != short {
		t.Error("a record with nothing too long was copied")
	}
	line, _ := json.Marshal(got)
	if len(line) > 16<<10 {
		t.Errorf("capped record is %d bytes of JSON", len(line))
	}
}
