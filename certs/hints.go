package certs

// Hint tells how one platform or tool is made to trust the CA.
type Hint struct {
	Platform string
	Steps    []string
}

// InstallHints returns the install steps per platform. pemPath is where the
// PEM certificate is on this machine (CA.CertFile, or the file a user
// downloaded); the steps for phones name the exported files by
// Format.FileName.
func InstallHints(pemPath string) []Hint {
	der := FormatDER.FileName()
	profile := FormatMobileConfig.FileName()
	q := shellQuote(pemPath)
	return []Hint{
		{"iOS / iPadOS", []string{
			"Open " + profile + " in Safari (from the proxy's download page) or AirDrop it; the device says \"Profile Downloaded\".",
			"Install it in Settings > General > VPN & Device Management.",
			// Apple HT204477, "Trust manually installed certificate
			// profiles": since iOS 10.3 a root installed by hand is not
			// trusted for TLS until enabled here.
			"Then turn on full trust: Settings > General > About > Certificate Trust Settings. Without this step TLS still fails.",
		}},
		{"Android", []string{
			// Android 11 removed installing CA certificates from a
			// browser download (KeyChain.createInstallIntent no longer
			// handles them): the user must go through Settings.
			"Copy " + der + " to the device, then Settings > Security > Encryption & credentials > Install a certificate > CA certificate.",
			// Android 7.0 behaviour changes, "Trusted certificate authorities".
			"This is a user CA: Chrome trusts it, but apps targeting API 24+ ignore user CAs unless their network_security_config trusts them.",
			"QA teams: ship a debug build whose res/xml/network_security_config.xml has <debug-overrides><trust-anchors><certificates src=\"user\"/></trust-anchors></debug-overrides> (it applies to debuggable builds only),",
			"or install the CA as a system CA on an emulator with a Google APIs (not Google Play) image via adb root; Android 14+ keeps system CAs in the Conscrypt APEX, which takes extra steps.",
		}},
		{"macOS", []string{
			"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain " + q,
			"(for your user only: security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db " + q + ")",
		}},
		{"Windows", []string{
			"certutil -addstore -user Root " + der,
		}},
		{"Debian / Ubuntu", []string{
			// update-ca-certificates(8) reads only files ending in .crt.
			"sudo cp " + q + " /usr/local/share/ca-certificates/tlsresume.crt && sudo update-ca-certificates",
		}},
		{"Chrome / Chromium on Linux", []string{
			"certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n tlsresume -i " + q,
		}},
		{"Firefox", []string{
			"Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import, and tick \"Trust this CA to identify websites\";",
			"or, on Windows and macOS, set security.enterprise_roots.enabled to true in about:config to trust the system store.",
		}},
		{"curl / OpenSSL", []string{
			"curl --cacert " + q + " https://example.com/",
			"openssl s_client -CAfile " + q + " -connect example.com:443",
			"SSL_CERT_FILE=" + q + " for other OpenSSL-based tools (it replaces the default bundle).",
		}},
		{"Go", []string{
			// crypto/x509 root_unix.go reads SSL_CERT_FILE; on darwin and
			// windows Go verifies through the OS (root_darwin.go,
			// root_windows.go).
			"SSL_CERT_FILE=" + q + " on Linux and BSD (it replaces the system roots); on macOS and Windows Go uses the OS store.",
		}},
		{"Node.js", []string{
			"NODE_EXTRA_CA_CERTS=" + q + " (added to Node's bundled roots; read once at startup).",
		}},
		{"Python", []string{
			"REQUESTS_CA_BUNDLE=" + q + " for requests (it replaces certifi's bundle); SSL_CERT_FILE=" + q + " for the ssl module and urllib.",
		}},
	}
}

// shellQuote quotes p for a POSIX shell if it needs it.
func shellQuote(p string) string {
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '.' || c == '-' || c == '_' || c == '~' || c == '+' || c == ':' || c == '=') {
			b := []byte{'\''}
			for _, c := range []byte(p) {
				if c == '\'' {
					b = append(b, `'\''`...)
				} else {
					b = append(b, c)
				}
			}
			return string(append(b, '\''))
		}
	}
	return p
}
