package certs

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"strings"
)

// Format is a way to export the CA certificate (never its key).
type Format string

// The export formats.
const (
	// FormatPEM is the Base64 text form that curl, OpenSSL, Go, Node,
	// Python and update-ca-certificates read.
	FormatPEM Format = "pem"
	// FormatDER is the binary form, as a .cer file: what Android's
	// "Install a certificate" and Windows' certificate import expect.
	FormatDER Format = "der"
	// FormatMobileConfig is an Apple configuration profile holding the
	// certificate, which iOS, iPadOS and macOS install from Safari, Mail
	// or AirDrop.
	FormatMobileConfig Format = "mobileconfig"
)

// Formats lists every export format.
func Formats() []Format { return []Format{FormatPEM, FormatDER, FormatMobileConfig} }

// FileName returns the file name to save or serve f under.
func (f Format) FileName() string {
	switch f {
	case FormatPEM:
		return "tlsresume-ca.pem"
	case FormatDER:
		return "tlsresume-ca.cer"
	case FormatMobileConfig:
		return "tlsresume-ca.mobileconfig"
	}
	return ""
}

// ContentType returns the MIME type to serve f with.
func (f Format) ContentType() string {
	switch f {
	case FormatPEM:
		return "application/x-pem-file"
	case FormatDER:
		// The type Android's CertInstaller and Windows register for CA
		// certificates, so a browser hands the download to them.
		return "application/x-x509-ca-cert"
	case FormatMobileConfig:
		// The type Safari on iOS and macOS hands to the profile installer;
		// served as anything else, a profile is shown as text.
		return "application/x-apple-aspen-config"
	}
	return ""
}

// Export returns the CA certificate in format f.
func (ca *CA) Export(f Format) ([]byte, error) {
	switch f {
	case FormatPEM:
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), nil
	case FormatDER:
		return bytes.Clone(ca.Cert.Raw), nil
	case FormatMobileConfig:
		return ca.mobileConfig()
	}
	return nil, fmt.Errorf("certs: unknown export format %q (want pem, der or mobileconfig)", string(f))
}

// mobileConfig builds a configuration profile with one
// com.apple.security.root payload (Apple Device Management reference,
// "CertificateRoot"). The PayloadIdentifiers derive from the certificate,
// so downloading the same CA again replaces its profile instead of adding a
// second one, while two machines' CAs install side by side; the
// PayloadUUIDs are random per export, as Apple's tools make them.
func (ca *CA) mobileConfig() ([]byte, error) {
	outerUUID, err := randomUUID()
	if err != nil {
		return nil, err
	}
	innerUUID, err := randomUUID()
	if err != nil {
		return nil, err
	}
	id := "com.github.tlsresume.ca." + ca.shortID()
	name := ca.Cert.Subject.CommonName
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>` + FormatDER.FileName() + `</string>
			<key>PayloadContent</key>
			<data>
`)
	writeBase64Lines(&b, ca.Cert.Raw, "\t\t\t")
	b.WriteString(`			</data>
			<key>PayloadDescription</key>
			<string>Adds the tlsresume CA root certificate</string>
			<key>PayloadDisplayName</key>
			<string>` + xmlText(name) + `</string>
			<key>PayloadIdentifier</key>
			<string>` + id + `.root</string>
			<key>PayloadType</key>
			<string>com.apple.security.root</string>
			<key>PayloadUUID</key>
			<string>` + innerUUID + `</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
		</dict>
	</array>
	<key>PayloadDescription</key>
	<string>Trust the tlsresume diagnostic proxy's CA (SHA-256 ` + ca.Fingerprint() + `). After installing, enable full trust in Settings, General, About, Certificate Trust Settings.</string>
	<key>PayloadDisplayName</key>
	<string>` + xmlText(name) + `</string>
	<key>PayloadIdentifier</key>
	<string>` + id + `</string>
	<key>PayloadRemovalDisallowed</key>
	<false/>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>` + outerUUID + `</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
`)
	return b.Bytes(), nil
}

// writeBase64Lines writes data as Base64 in lines of 52 characters, as
// Apple's own profiles do, each with prefix.
func writeBase64Lines(b *bytes.Buffer, data []byte, prefix string) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(52, len(enc))
		b.WriteString(prefix)
		b.WriteString(enc[:n])
		b.WriteByte('\n')
		enc = enc[n:]
	}
}

// xmlText escapes s for XML character data.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// randomUUID returns an RFC 9562 version 4 UUID in upper case.
func randomUUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("certs: generating UUID: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}
