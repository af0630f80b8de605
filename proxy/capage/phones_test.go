package capage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/certs"
)

// TestPhones: an iPhone's steps end in Certificate Trust Settings and name
// the profile it installs; Android's name the .cer file and "Install a
// certificate"; each comes with the file Files serves for it.
func TestPhones(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	ca, _, err := certs.Init(filepath.Join(dir, "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	phones := Phones(ca)
	if len(phones) != 2 {
		t.Fatalf("%d phones, want iOS and Android: %+v", len(phones), phones)
	}
	for i, want := range []struct {
		platform string
		file     certs.Format
		steps    []string
	}{
		{"iOS / iPadOS", certs.FormatMobileConfig, []string{"tlsresume-ca.mobileconfig", "Certificate Trust Settings"}},
		{"Android", certs.FormatDER, []string{"tlsresume-ca.cer", "Install a certificate > CA certificate"}},
	} {
		p := phones[i]
		text := strings.Join(p.Steps, "\n")
		if p.Platform != want.platform || p.File != want.file {
			t.Errorf("phone %d: %s with %s, want %s with %s", i, p.Platform, p.File, want.platform, want.file)
		}
		for _, s := range want.steps {
			if !strings.Contains(text, s) {
				t.Errorf("%s's steps lack %q: %s", p.Platform, s, text)
			}
		}
	}
}
