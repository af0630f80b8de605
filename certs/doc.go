// Package certs owns tlsresume's certificate authority and the leaf
// certificates it signs for intercepted hosts.
//
// A [CA] lives in a per-user directory ([Dir]): an ECDSA P-256 certificate in
// ca.pem and its PKCS #8 key in ca-key.pem (mode 0600, directory 0700).
// [Init] creates one if none exists and never overwrites an existing file;
// [Load] refuses a key other users can read, a certificate that does not match
// its key and an expired CA, each with an error that says what to do.
// [CA.Export] writes the certificate as PEM, DER or an Apple configuration
// profile, and [InstallHints] says how each platform is told to trust it.
//
// An [Issuer] mints TLS server leaves that Apple platforms, Android, browsers
// and CLI tools accept. All leaves share one key, so minting is one signature;
// leaves are cached per host in a bounded LRU, concurrent requests for one
// host mint once, and a cached lookup does not allocate.
// [Issuer.GetCertificate] plugs into [crypto/tls.Config].
//
// The package is pure: it does no network I/O and no logging. It reads the
// file system only in the CA directory and, for [Dir], the environment.
package certs
