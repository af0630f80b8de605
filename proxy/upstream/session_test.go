package upstream

import (
	"crypto/tls"
	"errors"
	"testing"
	"time"
)

// TestParseSessionFacts checks the parser against sessions made by the
// running Go, so a change of crypto/tls's encoding fails here.
func TestParseSessionFacts(t *testing.T) {
	for _, tv := range versions {
		t.Run(tls.VersionName(tv.version), func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			cs, st := realSession(t, tv.version)
			_, state, err := cs.ResumptionState()
			if err != nil {
				t.Fatal(err)
			}
			b, err := state.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			f, err := parseSessionFacts(b)
			if err != nil {
				t.Fatal(err)
			}
			if f.version != st.Version || f.cipherSuite != st.CipherSuite {
				t.Errorf("version %#x suite %#x, want %#x %#x", f.version, f.cipherSuite, st.Version, st.CipherSuite)
			}
			created := time.Unix(int64(f.createdAt), 0)
			if created.Before(before.Truncate(time.Second)) || created.After(time.Now()) {
				t.Errorf("created_at %v is not about now", created)
			}
			switch tv.version {
			case tls.VersionTLS13:
				// Go servers give tickets a 7-day lifetime (common.go, maxSessionTicketLifetime).
				if d := time.Duration(f.useBy-f.createdAt) * time.Second; d != 7*24*time.Hour {
					t.Errorf("use_by - created_at = %v, want 168h", d)
				}
			default:
				if f.useBy != 0 {
					t.Errorf("use_by = %d for TLS 1.2", f.useBy)
				}
			}
			if got := f.offered(); got != tv.offered {
				t.Errorf("offered = %q, want %q", got, tv.offered)
			}

			// Fields may be added at the end (ticket.go).
			if g, err := parseSessionFacts(append(b, 0, 1, 2)); err != nil || g != f {
				t.Errorf("with trailing bytes: %+v, %v", g, err)
			}
			// Every proper prefix fails, with an offset inside the input.
			for n := range len(b) {
				_, err := parseSessionFacts(b[:n])
				var fe *sessionFormatError
				if !errors.As(err, &fe) || fe.Offset > n {
					t.Fatalf("prefix of %d bytes: %v", n, err)
				}
			}
		})
	}
}

func TestParseSessionFactsErrors(t *testing.T) {
	// A minimal TLS 1.2 client session: version, type, suite, created_at,
	// secret<1>, extra<0>, ems, early_data, certificate_list<0>,
	// verified_chains<0>, curve_id.
	valid := []byte{
		0x03, 0x03, 2, 0xc0, 0x2f, 0, 0, 0, 0, 0, 0, 0, 1,
		1, 0xaa, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x1d,
	}
	if _, err := parseSessionFacts(valid); err != nil {
		t.Fatalf("minimal session: %v", err)
	}
	with := func(off int, v byte) []byte {
		b := append([]byte{}, valid...)
		b[off] = v
		return b
	}
	tests := []struct {
		name  string
		data  []byte
		field string
		off   int
	}{
		{"empty", nil, "version", 0},
		{"server session", with(2, 1), "type", 2},
		{"empty secret", append(valid[:13:13], 0), "secret", 13},
		{"ems not boolean", with(18, 2), "ext_master_secret", 18},
		{"early_data not boolean", with(19, 7), "early_data", 19},
		{"certificate_list too long", with(22, 9), "certificate_list", 20},
		{"alpn missing", with(19, 1)[:26], "alpn", 26},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseSessionFacts(tt.data)
			var fe *sessionFormatError
			if !errors.As(err, &fe) || fe.Field != tt.field || fe.Offset != tt.off {
				t.Errorf("error %v, want field %s at offset %d", err, tt.field, tt.off)
			}
		})
	}
}
