package tlstest

import (
	"context"
	"errors"
	"strings"

	"github.com/chromedp/chromedp"
)

// Navigate has the chromedp browser of ctx load url, then run then (a wait
// for the page, say). A load Chromium aborts with ERR_NETWORK_CHANGED,
// which other tests' network namespaces cause (see retryReason), is tried
// again, chromiumAttempts times in all, each retry said to logf (t.Logf).
// Any other error is an answer and returned at once.
func Navigate(ctx context.Context, url string, logf func(string, ...any), then ...chromedp.Action[chromedp.Void]) error {
	var err error
	for attempt := range chromiumAttempts {
		err = chromedp.Do(ctx, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}, then...)...)
		if !networkChanged(err) || ctx.Err() != nil || attempt == chromiumAttempts-1 {
			break
		}
		if logf != nil {
			logf("chromium load %d of %s: the network changed during the load (ERR_NETWORK_CHANGED); loading it again", attempt+1, url)
		}
	}
	return err
}

// networkChanged reports whether err is Chromium's ERR_NETWORK_CHANGED.
func networkChanged(err error) bool {
	var le *chromedp.LoadError
	return errors.As(err, &le) && strings.Contains(le.ErrorText, "ERR_NETWORK_CHANGED")
}
