package proxy

import (
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// What would fix a failure, for the verdict's fix (inspect.Verdict.Fix):
// said in full in the record, the live view and the 502 page a client
// prints, and shortly on the console line, where the short form says what
// failed too, unless the error's own words add to it (detail: the names a
// certificate carries, its dates).
type fix struct {
	short, full string
	detail      bool
}

var (
	fixTrustCA = fix{short: "trust tlsresume's CA (tlsresume ca show)",
		full: "trust tlsresume's CA on the client (tlsresume ca show says how; through the proxy, http://tlsresume.proxy/ serves it); " +
			"an app that pins its certificates will never trust it: pass its host through with --passthrough HOST or --auto-passthrough"}
	fixTLSToProxy = fix{short: "it spoke TLS to the proxy port: use -x http://, not https://",
		full: "name the proxy with http://, not https:// (curl -x http://HOST:PORT; a device's HTTP proxy setting): " +
			"the proxy port speaks plain HTTP, and the client's TLS runs inside the CONNECT tunnel"}
	fixUnknownAuthority = fix{short: "origin's CA unknown: --upstream-ca FILE.pem, or --insecure-upstream",
		full: "the origin's certificate is signed by a CA tlsresume does not trust (a lab's own CA?): " +
			"give that CA's certificate with --upstream-ca FILE.pem, or skip verification with --insecure-upstream (recorded)"}
	fixWrongName = fix{short: "a name on its certificate, or --insecure-upstream", detail: true,
		full: "the origin's certificate does not carry the name tlsresume asked for: reach it by a name on its certificate, " +
			"or skip verification with --insecure-upstream (recorded)"}
	fixExpired = fix{short: "renew its certificate, or --insecure-upstream", detail: true,
		full: "the origin's certificate has expired or is not yet valid (or this machine's clock is off): " +
			"renew it, or skip verification with --insecure-upstream (recorded)"}
	fixPassedSessionID = fix{short: "trust the origin's CA on the client too, or --session-id-clients intercept",
		full: "it is passed through because it resumes only by session ID: trust the origin's CA on the client as well as tlsresume's, " +
			"or intercept it with --session-id-clients intercept (then it never resumes here, and its HTTP is seen)"}
	fixPassed = fix{short: "trust the origin's CA on the client",
		full: "a client passed through sees the origin's own certificate: trust the origin's CA on the client, or stop passing it through (passthrough says why it is)"}
)

// fixes are every fix, for the console's form of a record's.
var fixes = []fix{fixTrustCA, fixTLSToProxy, fixUnknownAuthority, fixWrongName, fixExpired, fixPassedSessionID, fixPassed}

// fixNamed is the fix whose full form is full: a record's, for the
// console (the zero fix when none is known).
func fixNamed(full string) fix {
	for _, f := range fixes {
		if f.full == full {
			return f
		}
	}
	return fix{short: full, full: full}
}

// fixOf says what would fix the failure verdict v names (the zero fix:
// nothing known).
func fixOf(r *inspect.ConnRecord, v inspect.Verdict, f verdictFacts) fix {
	switch {
	case f.tlsToProxy:
		return fixTLSToProxy
	case v.Code == inspect.CodeUpstreamFailed && r.UpstreamLeg != nil:
		return upstreamFix(r.UpstreamLeg)
	case v.Code == inspect.CodeClientRejectedCert:
		return fixTrustCA
	case v.Code == inspect.CodePassthroughRejectedCert:
		return passthroughFix(r)
	}
	return fix{}
}

// passthroughFix is the fix for a passed-through client that rejected the
// origin's certificate: it must trust the origin's CA too, or, when it is
// passed through only because it resumes by session ID, be intercepted.
func passthroughFix(r *inspect.ConnRecord) fix {
	if strings.Contains(r.Passthrough, "--session-id-clients passthrough") {
		return fixPassedSessionID
	}
	return fixPassed
}

// upstreamFix reads an upstream leg's failure: a certificate tlsresume
// could not verify names its fix. The words are crypto/x509's error texts
// (verify.go: UnknownAuthorityError, HostnameError, CertificateInvalidError).
func upstreamFix(u *inspect.UpstreamLeg) fix {
	switch e := u.Error; {
	case strings.Contains(e, "x509: certificate signed by unknown authority"):
		return fixUnknownAuthority
	case strings.Contains(e, "x509: certificate is valid for"), strings.Contains(e, "x509: certificate is not valid for any names"),
		strings.Contains(e, "x509: cannot validate certificate for"):
		return fixWrongName
	case strings.Contains(e, "x509: certificate has expired or is not yet valid"):
		return fixExpired
	}
	return fix{}
}
