package inspect

import (
	"encoding/json"
	"strings"
	"testing"
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
