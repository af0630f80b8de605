// Package web is tlsresume's live view: a page in a browser that shows each
// connection as it opens and closes, with both legs, the ClientHello's
// resumption facts, ticket lineage, a timeline per program and host, the
// report's clients × hosts and a diff of two clients; beside a proxy with
// --wireguard, a page for its devices (each one's QR code, configuration
// and counters, and the CA's steps for phones; Config.WireGuard); the JSON
// API the pages use (and scripts can); and /metrics in Prometheus's text
// format.
//
// It reads records from a stream of inspect.Event (Feed: a proxy's
// Server.Subscribe) or from saved records (Add: `tlsresume web FILE`), and
// keeps the newest of them (Config.History). It never slows the proxy: the
// stream drops events for a view that falls behind, and the view says how
// many. Everything it serves is embedded in the binary; it checks Host,
// token and origin on every request, reads included (package guard), and
// never serves a key but a WireGuard device's own, in its configuration
// and QR code, to the view's own page or a script, never stored (no-store).
package web
