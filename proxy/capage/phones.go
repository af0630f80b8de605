package capage

import "github.com/tlsresume/tlsresume/certs"

// Phone is how a phone of one platform is made to trust the CA: the file it
// installs (served by Files under File.FileName()) and the steps, from
// certs.InstallHints.
type Phone struct {
	Platform string
	File     certs.Format
	Steps    []string
}

// phoneFiles is the file each phone platform of certs.InstallHints
// installs: a profile for iOS and iPadOS, the DER certificate for Android
// (its "Install a certificate" reads .cer and .crt).
var phoneFiles = []struct {
	platform string
	file     certs.Format
}{
	{"iOS / iPadOS", certs.FormatMobileConfig},
	{"Android", certs.FormatDER},
}

// Phones returns the steps that make an iPhone or iPad and an Android phone
// trust ca, in that order, for the pages that set a phone up (the live
// view's WireGuard device page).
func Phones(ca *certs.CA) []Phone {
	hints := certs.InstallHints(ca.CertFile())
	var out []Phone
	for _, pf := range phoneFiles {
		for _, h := range hints {
			if h.Platform == pf.platform {
				out = append(out, Phone{Platform: h.Platform, File: pf.file, Steps: h.Steps})
			}
		}
	}
	return out
}
