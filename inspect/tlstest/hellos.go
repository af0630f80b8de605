package tlstest

import "crypto/tls"

// Hello is one ClientHello as tshark saw it, with what the server answered,
// and the resumption facts that follow from tshark's fields alone. The
// attempt and resumed_by values are the record's ("psk", "ticket",
// "session_id", "none").
type Hello struct {
	CH         *ClientHello
	SH         *ServerHello // nil when no ServerHello answered it
	ClientPort int
	Frame      int  // the frame that completed the ClientHello
	Full       bool // TLS 1.2: the server sent a Certificate, so a full handshake
	Issued     bool // the session ID is one a TLS 1.2 ServerHello issued earlier in the capture
}

// Connections groups the ClientHellos sent to serverPort by TCP connection,
// in the order the connections began, and pairs each with the next
// ServerHello (or HelloRetryRequest) of its connection.
func Connections(msgs []Message, serverPort int) [][]*Hello {
	var order []int
	byStream := map[int][]*Hello{}
	issued := map[string]bool{}
	for _, m := range msgs {
		hellos := byStream[m.Stream]
		switch {
		case m.Type == TypeClientHello && m.DstPort == serverPort:
			ch := m.ClientHello()
			if hellos == nil {
				order = append(order, m.Stream)
			}
			byStream[m.Stream] = append(hellos, &Hello{
				CH: ch, ClientPort: m.SrcPort, Frame: m.Frame,
				Issued: ch.SessionID != "" && issued[ch.SessionID],
			})
		case m.Type == TypeServerHello && m.SrcPort == serverPort:
			for _, h := range hellos {
				if h.SH == nil {
					h.SH = m.ServerHello()
					// The ID a TLS 1.2 server may resume later (RFC 5246, Section 7.4.1.3).
					if h.SH.Version() < tls.VersionTLS13 && h.SH.SessionID != "" {
						issued[h.SH.SessionID] = true
					}
					break
				}
			}
		case m.Type == TypeCertificate && m.SrcPort == serverPort && len(hellos) > 0:
			hellos[len(hellos)-1].Full = true
		}
	}
	out := make([][]*Hello, len(order))
	for i, s := range order {
		out[i] = byStream[s]
	}
	return out
}

// TicketOffered reports a session_ticket extension carrying a ticket; an
// empty one only asks for a ticket (RFC 5077, Section 3.2).
func (h *Hello) TicketOffered() bool { return h.CH.Has(35) && h.CH.ExtensionLens[35] > 0 }

// Attempt is how the hello tried to resume. A session ID counts only when
// the server issued it earlier in the capture, which started before the
// first connection: TLS 1.3 clients, and Go's TLS 1.2 client, send random
// ones (RFC 8446, Appendix D.4; RFC 5077, Section 3.4).
func (h *Hello) Attempt() string {
	switch {
	case h.CH.Has(41):
		return "psk"
	case h.TicketOffered():
		return "ticket"
	case h.Issued:
		return "session_id"
	}
	return "none"
}

// Resumed is the verdict the dissected handshake shows: in TLS 1.3 the
// server selects a PSK (RFC 8446, Section 4.2.11); in TLS 1.2 it sends no
// Certificate (RFC 5246, Section 7.3, Figure 2).
func (h *Hello) Resumed() bool {
	switch {
	case h.SH == nil || h.SH.HRR():
		return false
	case h.SH.Version() >= tls.VersionTLS13:
		return h.SH.SelectedPSK >= 0
	}
	return !h.Full
}

// ResumedBy is how a resumed handshake resumed, "" when it did not. A TLS
// 1.2 server that accepts a ticket echoes the client's session ID (RFC 5077,
// Section 3.4), so an offered ticket decides between the two.
func (h *Hello) ResumedBy() string {
	switch {
	case !h.Resumed():
		return ""
	case h.SH.Version() >= tls.VersionTLS13:
		return "psk"
	case h.TicketOffered():
		return "ticket"
	}
	return "session_id"
}
