package tlstest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// ChromiumPage is one page load by headless Chromium (DumpDOM).
type ChromiumPage struct {
	URL string
	// Dir holds a fresh profile for each attempt (chromium-profile-N).
	Dir string
	// Env is added to Chromium's environment: HOME, say, whose NSS
	// database (~/.pki/nssdb) Chromium trusts.
	Env []string
	// Flags are added to the headless flags DumpDOM always passes.
	Flags []string
	// Logf, when set, is told of each retry: pass t.Logf.
	Logf func(format string, args ...any)
}

// chromiumAttempts bounds the runs of one DumpDOM: the first and up to
// three retries.
const chromiumAttempts = 4

// DumpDOM has headless Chromium load p.URL and returns the DOM it dumped
// (--dump-dom; empty when the load failed) and what it wrote to stderr
// ("Page load failed: net::ERR_…" when the load failed, exit status 0). An
// error says how a run ended badly. A run is retried, with a fresh profile,
// when it says ERR_NETWORK_CHANGED, or when it dumped nothing without
// saying why; see retryReason.
func DumpDOM(ctx context.Context, chromium string, p ChromiumPage) (dom, stderr string, err error) {
	for attempt := range chromiumAttempts {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(p.Dir, fmt.Sprintf("chromium-profile-%d", attempt))}, p.Flags...)
		args = append(args, "--dump-dom", p.URL)
		dom, stderr, err = run(ctx, p.Env, "", chromium, args...)
		why := retryReason(dom, stderr)
		if why == "" || ctx.Err() != nil || attempt == chromiumAttempts-1 {
			break
		}
		if p.Logf != nil {
			p.Logf("chromium run %d of %s: %s; running it again", attempt+1, p.URL, why)
		}
	}
	return dom, stderr, err
}

// retryReason says why a Chromium run that printed dom and stderr should be
// run again, or "" when it should not:
//
//   - ERR_NETWORK_CHANGED: Chromium aborts a load when the machine's IP
//     addresses change, which other tests do when they make network
//     namespaces and veth pairs. Reproduced here: a veth pair given an
//     address while the first connection's TLS handshake was under way
//     failed 4 of 5 loads with "Page load failed: net::ERR_NETWORK_CHANGED".
//   - an empty DOM with no "Page load failed": Chromium now and then exits
//     at start-up without loading anything (seen under load in CI).
//
// A load that failed for any other reason (a certificate not trusted, say)
// is an answer, not a flake.
func retryReason(dom, stderr string) string {
	switch {
	case strings.Contains(dom, "ERR_NETWORK_CHANGED") || strings.Contains(stderr, "ERR_NETWORK_CHANGED"):
		return "the network changed during the load (ERR_NETWORK_CHANGED)"
	case strings.TrimSpace(dom) == "" && !strings.Contains(stderr, "Page load failed"):
		return fmt.Sprintf("it dumped no DOM and said no reason (stderr: %s)", Tail(stderr, 300))
	}
	return ""
}
