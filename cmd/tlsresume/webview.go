package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/rs/zerolog"

	"github.com/tlsresume/tlsresume/proxy/web"
)

// defaultWeb is where the live view listens unless --web says otherwise.
const defaultWeb = "127.0.0.1:8081"

// webFlags are the live view's settings, shared by `proxy` and `web`.
type webFlags struct {
	addr    string
	token   string
	history int
	fs      *flag.FlagSet
}

func (w *webFlags) register(fs *flag.FlagSet) {
	w.fs = fs
	fs.StringVar(&w.addr, "web", defaultWeb, "serve the live view in a browser on `address` (off: none), e.g. --web 0.0.0.0:8081 (a non-loopback address gets a token)")
	fs.StringVar(&w.token, "web-token", "", "require this `token` on the live view (default: a random one when --web is not loopback), e.g. --web-token s3cret")
	fs.IntVar(&w.history, "web-history", web.DefaultHistory, "keep the newest `records` in the live view, e.g. --web-history 200000")
}

// explicit reports whether --web was given (on the command line or in the
// config file): then an address that cannot be bound is an error.
func (w *webFlags) explicit() bool {
	set := false
	w.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "web" })
	return set
}

func (w *webFlags) validate() error {
	if w.history <= 0 {
		return fmt.Errorf("--web-history %d: want a positive number of records", w.history)
	}
	if w.addr == "off" {
		return nil
	}
	if _, _, err := net.SplitHostPort(w.addr); err != nil {
		return fmt.Errorf("--web %q: want host:port or off", w.addr)
	}
	return nil
}

// listen binds the view's address. For the proxy (beside the proxy), the
// default address may be taken (a second tlsresume): that is said and the
// view skipped, ln nil and no error. An explicit --web that cannot be
// bound is an error, and so is any address for `tlsresume web`, whose
// only job the view is.
func (w *webFlags) listen(log zerolog.Logger, beside bool) (net.Listener, error) {
	if w.addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", w.addr)
	switch {
	case err == nil:
		return ln, nil
	case !beside:
		return nil, fmt.Errorf("--web %s: %w (another tlsresume? --web ADDR picks another address, e.g. --web 127.0.0.1:9000)", w.addr, err)
	case w.explicit():
		return nil, fmt.Errorf("--web %s: %w", w.addr, err)
	}
	log.Warn().Err(err).Str("web", w.addr).Msg("live view not started: its default address is taken (another tlsresume?); --web ADDR picks another, --web off says none")
	return nil, nil
}

// config is the view's configuration for a listener on ln: a token when
// one was given or the address is not loopback.
func (w *webFlags) config(ln net.Listener) (web.Config, error) {
	cfg := web.Config{Addr: w.addr, History: w.history, Token: w.token}
	if cfg.Token == "" && !loopback(ln.Addr()) {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return cfg, err
		}
		cfg.Token = hex.EncodeToString(b)
	}
	return cfg, nil
}

// url is what a person opens: the bound address (a loopback one for a
// wildcard listener), with the token.
func viewURL(ln net.Listener, token string) string {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	host := ln.Addr().String()
	if err == nil {
		a := ap.Addr().Unmap()
		if a.IsUnspecified() {
			a = netip.MustParseAddr("127.0.0.1")
		}
		host = netip.AddrPortFrom(a, ap.Port()).String()
	}
	u := "http://" + host + "/"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

func loopback(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// serveView runs view on ln until ctx is done, and says where it is.
func serveView(ctx context.Context, view *web.Server, ln net.Listener, token string, stderr io.Writer, log zerolog.Logger) <-chan error {
	done := make(chan error, 1)
	url := viewURL(ln, token)
	log.Info().Str("listen", ln.Addr().String()).Str("mode", "web").Msg("listening")
	extra := ""
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && ap.Addr().IsUnspecified() {
		extra = " (and on this machine's other addresses)"
	}
	linef(stderr, "Live view: %s%s", url, extra)
	go func() {
		err := view.Serve(ctx, ln)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error().Err(err).Msg("live view")
		}
		done <- err
	}()
	return done
}

// joinNames names a view of saved files for its header.
func joinNames(names []string) string {
	s := strings.Join(names, ", ")
	if len(s) > 80 {
		s = s[:77] + "…"
	}
	return s
}
