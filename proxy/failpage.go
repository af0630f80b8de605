package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/inspect"
)

// answerFailure tells a client whose origin tlsresume could not reach (or
// could not trust, or that refused it) what failed, rather than a bare
// close after "200 Connection established": it completes the client's
// handshake with a leaf for the name the client asked for, issuing no
// ticket, and answers its first HTTP request with a 502 whose body names
// the failure and the verdict, as mitmproxy does. A client that speaks no
// HTTP (its ALPN offers neither h2 nor http/1.1) gets an internal_error
// alert instead: TLS has no alert for "the origin failed", and a handshake
// it cannot use would only hide the failure.
//
// The connection ends either way; its legs say why.
func (c *conn) answerFailure(upErr error) error {
	s := c.s
	if s.ctx.Err() != nil {
		return errLegSays // shutting down: nobody to tell
	}
	cfg := s.clientBase.Clone()
	cfg.SessionTicketsDisabled = true
	cfg.ClientAuth = tls.NoClientCert
	c.clientLeg = &inspect.ClientLeg{Ticket: inspect.TicketNone}
	alpn, speaksHTTP := failureALPN(c.rec.ClientHello)
	if alpn != "" {
		cfg.NextProtos = []string{alpn}
	}
	names, _ := certs.UsableNames(leafNames(c, nil))
	leaf, leafErr := s.cfg.Issuer.LeafFor(names)
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		if !speaksHTTP {
			return nil, fmt.Errorf("the client speaks no HTTP to answer in: %w", upErr)
		}
		return nil, leafErr
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return leaf, leafErr }
	tc, err := s.clientHandshake(s.ctx, c, c.clientStream(), cfg)
	c.rec.ClientLeg = c.clientLeg
	if err != nil {
		c.noteRejection()
		return errLegSays
	}
	defer tc.Close()
	s.serveFailure(c, tc, alpn, upErr)
	return errLegSays
}

// answerFailureAfterHandshake tells a client that was answered ahead of
// its origin's handshake, which then failed, what failed: in HTTP, as
// answerFailure tells a client whose handshake waited.
func (c *conn) answerFailureAfterHandshake(tc *tls.Conn, upErr error) error {
	if c.s.ctx.Err() == nil {
		c.s.serveFailure(c, tc, tc.ConnectionState().NegotiatedProtocol, upErr)
	}
	return errLegSays
}

// serveFailure answers the first HTTP request on tc, in alpn, with a 502
// that names upErr and the verdict. The body is text for a person (curl
// prints it to a terminal) and its errors embed names the origin chose
// (x509: "certificate is valid for …"): they are shown through
// inspect.Printable.
func (s *Server) serveFailure(c *conn, tc *tls.Conn, alpn string, upErr error) {
	v := decide(c.rec, c.facts)
	fix := ""
	if v.Fix != "" {
		fix = "\nfix: " + v.Fix + "\n"
	}
	body := fmt.Sprintf("tlsresume could not reach %s for this request.\n\n%s\n%s\nverdict: %s\n%s\n\n(record %s)\n",
		inspect.Printable(c.rec.Target), inspect.Printable(upErr.Error()), fix, v.Code, inspect.Printable(v.Text), c.rec.ID)
	tc.SetDeadline(s.cfg.Now().Add(s.cfg.ConnectTimeout))
	if alpn == "h2" {
		srv := &http2.Server{IdleTimeout: time.Second}
		srv.ServeConn(tc, &http2.ServeConnOpts{BaseConfig: &http.Server{MaxHeaderBytes: maxHeaderBytes}, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeFailure(w, body)
		})})
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(tc, maxHeaderBytes)))
	if err != nil {
		return // not HTTP after all (no ALPN was offered), or a header past the limit: the close says it
	}
	req.Body.Close()
	resp := &http.Response{StatusCode: http.StatusBadGateway, ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{},
		Close: true, ContentLength: int64(len(body)), Body: io.NopCloser(strings.NewReader(body))}
	resp.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp.Header.Set("X-Tlsresume-Error", inspect.Printable(upErr.Error()))
	resp.Write(tc)
}

func writeFailure(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprint(w, body)
}

// failureALPN is the protocol to answer a failure in: http/1.1 when the
// client offers it or offers nothing (it may still speak HTTP), else h2;
// speaksHTTP is false when the client offers only other protocols.
func failureALPN(h *inspect.ClientHelloRecord) (alpn string, speaksHTTP bool) {
	if h == nil || len(h.ALPN) == 0 {
		return "", true
	}
	switch {
	case slices.Contains(h.ALPN, "http/1.1"):
		return "http/1.1", true
	case slices.Contains(h.ALPN, "h2"):
		return "h2", true
	}
	return "", false
}
