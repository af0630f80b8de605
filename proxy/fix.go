package proxy

import (
	"strings"

	"github.com/tlsresume/tlsresume/inspect"
)

// What would fix a failure, for the verdict's fix (inspect.Verdict.Fix):
// said once, in the record, the console line, the live view and the 502
// page a client prints.
const (
	fixTrustCA = "trust tlsresume's CA on the client (tlsresume ca show says how; through the proxy, http://tlsresume.proxy/ serves it); " +
		"an app that pins its certificates will never trust it: pass its host through with --passthrough HOST or --auto-passthrough"
	fixTLSToProxy = "name the proxy with http://, not https:// (curl -x http://HOST:PORT; a device's HTTP proxy setting): " +
		"the proxy port speaks plain HTTP, and the client's TLS runs inside the CONNECT tunnel"
	fixUnknownAuthority = "the origin's certificate is signed by a CA tlsresume does not trust (a lab's own CA?): " +
		"give that CA's certificate with --upstream-ca FILE.pem, or skip verification with --insecure-upstream (recorded)"
	fixWrongName = "the origin's certificate does not carry the name tlsresume asked for: reach it by a name on its certificate, " +
		"or skip verification with --insecure-upstream (recorded)"
	fixExpired = "the origin's certificate has expired or is not yet valid (or this machine's clock is off): " +
		"renew it, or skip verification with --insecure-upstream (recorded)"
)

// fixFor says what would fix the failure verdict v names, or "".
func fixFor(r *inspect.ConnRecord, v inspect.Verdict, f verdictFacts) string {
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
	return ""
}

// passthroughFix is the fix for a passed-through client that rejected the
// origin's certificate: it must trust the origin's CA too, or, when it is
// passed through only because it resumes by session ID, be intercepted.
func passthroughFix(r *inspect.ConnRecord) string {
	if strings.Contains(r.Passthrough, "--session-id-clients passthrough") {
		return "it is passed through because it resumes only by session ID: trust the origin's CA on the client as well as tlsresume's, " +
			"or intercept it with --session-id-clients intercept (then it never resumes here, and its HTTP is seen)"
	}
	return "a client passed through sees the origin's own certificate: trust the origin's CA on the client, or stop passing it through (" + r.Passthrough + ")"
}

// upstreamFix reads an upstream leg's failure: a certificate tlsresume
// could not verify names its fix. The words are crypto/x509's error texts
// (verify.go: UnknownAuthorityError, HostnameError, CertificateInvalidError).
func upstreamFix(u *inspect.UpstreamLeg) string {
	switch e := u.Error; {
	case strings.Contains(e, "x509: certificate signed by unknown authority"):
		return fixUnknownAuthority
	case strings.Contains(e, "x509: certificate is valid for"), strings.Contains(e, "x509: certificate is not valid for any names"),
		strings.Contains(e, "x509: cannot validate certificate for"):
		return fixWrongName
	case strings.Contains(e, "x509: certificate has expired or is not yet valid"):
		return fixExpired
	}
	return ""
}
