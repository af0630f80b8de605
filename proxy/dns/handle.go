package dns

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size this server advertises in its own
// answers: the DNS Flag Day 2020 value, which avoids IP fragmentation.
const ednsSize = 1232

// handler adapts a Server to dns.Handler, keeping miekg/dns out of the
// Server's exported methods.
type handler struct{ s *Server }

// ServeDNS answers one query. miekg/dns has already answered FORMERR, or
// dropped, whatever did not parse or failed Server.accept, so r has exactly
// one question.
func (h handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s := h.s
	client, network := clientOf(w)
	if len(r.Question) != 1 { // accept requires one; never trust it blindly
		m := new(dns.Msg)
		m.SetRcodeFormatError(r)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := canonical(q.Name)
	intercepted := q.Qclass == dns.ClassINET && interceptable(q.Qtype) && s.match.match(name)
	var resp *dns.Msg
	var failure string
	if intercepted {
		resp = s.intercept(r)
	} else {
		resp, failure = s.forward(r, network)
	}
	if s.names != nil && failure == "" {
		s.names.learn(client, name, resp.Answer, s.cfg.Now()) // before Truncate: every address answered
	}
	if network == "udp" {
		// What fits the client's buffer, and never more than ednsSize:
		// the answer to a spoofed query is a reflection, so it stays
		// small (and unfragmented); a larger one is for TCP.
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = min(int(opt.UDPSize()), ednsSize)
		}
		resp.Truncate(size) // sets TC when records had to go: the client retries over TCP
	} else {
		resp.Compress = true
	}

	// Recorded before the client can read it, so that Recent already
	// knows the name when the client connects to the address it got.
	a := Answer{
		Time:        s.cfg.Now(),
		Client:      client,
		Name:        name,
		Type:        dns.Type(q.Qtype).String(),
		Answer:      answerText(q.Qtype, resp.Answer),
		Intercepted: intercepted,
		Rcode:       rcodeText(resp.Rcode),
	}
	if failure != "" {
		a.Answer = failure
	}
	s.journal.add(a)
	writeErr := w.WriteMsg(resp)

	ev := s.cfg.Log.Debug()
	switch {
	case failure != "":
		ev = s.cfg.Log.Warn()
	case intercepted:
		ev = s.cfg.Log.Info()
	}
	if writeErr != nil {
		ev = ev.AnErr("write_error", writeErr)
	}
	ev.Str("name", a.Name).Str("type", a.Type).Stringer("client", a.Client).
		Str("answer", a.Answer).Str("rcode", a.Rcode).Bool("intercepted", intercepted).
		Str("net", network).Msg("answer dns query")
}

// interceptable reports whether queries of type t for an intercepted name
// are answered here; the rest are forwarded.
func interceptable(t uint16) bool {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeHTTPS, dns.TypeSVCB:
		return true
	}
	return false
}

// intercept answers r authoritatively: A with AnswerV4, AAAA with AnswerV6
// when set, and an empty NOERROR otherwise (AAAA without AnswerV6, HTTPS,
// SVCB: no ECH keys, no h3 hints).
func (s *Server) intercept(r *dns.Msg) *dns.Msg {
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true // we resolve everything else, like any home router
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: s.cfg.TTL}
	switch {
	case q.Qtype == dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IP(s.cfg.AnswerV4.AsSlice())}}
	case q.Qtype == dns.TypeAAAA && s.cfg.AnswerV6.IsValid():
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.IP(s.cfg.AnswerV6.AsSlice())}}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
		if opt.Version() != 0 { // RFC 6891, Section 6.1.3
			m.Answer = nil
			m.Rcode = dns.RcodeBadVers
		}
	}
	return m
}

// forward asks the upstream r over network ("udp" retries over TCP when the
// answer is truncated) and returns its answer with r's ID, or SERVFAIL and
// why.
func (s *Server) forward(r *dns.Msg, network string) (*dns.Msg, string) {
	select {
	case s.forwards <- struct{}{}:
		defer func() { <-s.forwards }()
	default:
		return servfail(r), "busy: " + strconv.Itoa(cap(s.forwards)) + " forwarded queries in flight"
	}
	ctx, cancel := context.WithTimeout(s.base, s.cfg.ForwardTimeout)
	defer cancel()

	// A fresh random ID upstream, so that an off-path guess must beat the
	// client's ID and ours; the message is otherwise the client's.
	up := *r
	up.Id = dns.Id()
	c := s.udpClient
	if network == "tcp" {
		c = s.tcpClient
	}
	resp, _, err := c.ExchangeContext(ctx, &up, s.cfg.Upstream)
	if err == nil && resp.Truncated && network == "udp" {
		// The client will get what fits in its own buffer (TC set if
		// that is not all), but from a complete answer.
		if full, _, err := s.tcpClient.ExchangeContext(ctx, &up, s.cfg.Upstream); err == nil {
			resp = full
		}
	}
	if err != nil {
		return servfail(r), "upstream " + s.cfg.Upstream + ": " + err.Error()
	}
	resp.Id = r.Id
	return resp, ""
}

func servfail(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	return m
}

// clientOf returns the client's IP (unmapped, without zone) and the
// transport.
func clientOf(w dns.ResponseWriter) (netip.Addr, string) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap().WithZone(""), "udp"
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap().WithZone(""), "tcp"
	}
	return netip.Addr{}, "unknown"
}

// answerText renders an answer section for Answer.Answer.
func answerText(qtype uint16, rrs []dns.RR) string {
	var b strings.Builder
	for i, rr := range rrs {
		if b.Len() > maxAnswerText {
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		h := rr.Header()
		if h.Rrtype != qtype {
			b.WriteString(dns.Type(h.Rrtype).String())
			b.WriteByte(' ')
		}
		b.WriteString(strings.TrimPrefix(rr.String(), h.String()))
	}
	text := b.String()
	if len(text) > maxAnswerText {
		text = text[:maxAnswerText] + "…"
	}
	return text
}

func rcodeText(rcode int) string {
	if t, ok := dns.RcodeToString[rcode]; ok {
		return t
	}
	return "RCODE" + strconv.Itoa(rcode)
}
