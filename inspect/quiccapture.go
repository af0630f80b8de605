package inspect

import (
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// maxQUICConns bounds the QUIC connections followed at once: QUIC has no
// FIN a capture could see, so past it the oldest connection is ended
// (its records handed on) to make room. A variable for tests.
var maxQUICConns = 65536

// captureFlow is one UDP 4-tuple of a capture that carried a client's
// Initial: a QUICFlow, which end is the client, and the order of the
// connection it follows among the capture's connections.
type captureFlow struct {
	key    connKey
	client netip.AddrPort
	flow   QUICFlow
	order  int
}

// quicAged is a QUIC connection in the order connections started:
// live while its flow still follows it (the flow's order is its own).
type quicAged struct {
	key   connKey
	order int
}

// datagram reads one UDP datagram of a capture: one of a flow already
// followed, or a client's first Initial, which starts one. The end that
// sent that Initial is the flow's client.
func (cr *captureReader) datagram(d pcap.Datagram) error {
	k := keyOf(d.Src, d.Dst)
	f := cr.quic[k]
	if f == nil {
		if !looksLikeClientInitial(d.Data) {
			return cr.err
		}
		f = &captureFlow{key: k, client: d.Src}
		f.flow = QUICFlow{
			Source: SourcePcap, ClientAddr: d.Src.String(), ServerAddr: d.Dst.String(),
			History: cr.history, Emit: cr.emit, Started: func(time.Time) { cr.started(f) },
		}
		cr.quic[k] = f
	}
	if d.Src == f.client {
		f.flow.Client(d.Data, d.Time, d.Frame)
	} else {
		f.flow.Server(d.Data, d.Time, d.Frame)
	}
	return cr.err
}

// started numbers a connection that f began to follow, among all of the
// capture's connections, and makes room for it.
func (cr *captureReader) started(f *captureFlow) {
	f.order = cr.next
	cr.next++
	cr.quicConns++
	cr.quicAge = append(cr.quicAge, quicAged{f.key, f.order})
	cr.boundQUIC()
}

// live reports whether a is the connection its flow follows.
func (cr *captureReader) live(a quicAged) bool {
	f := cr.quic[a.key]
	return f != nil && f.order == a.order
}

// boundQUIC ends the oldest connections while more than maxQUICConns are
// followed. quicAge lists connections oldest first, replaced ones too.
func (cr *captureReader) boundQUIC() {
	for len(cr.quic) > maxQUICConns {
		old := cr.quicAge[0]
		cr.quicAge = cr.quicAge[1:]
		if cr.live(old) {
			cr.quic[old.key].flow.Close()
			delete(cr.quic, old.key)
		}
	}
	if len(cr.quicAge) > 2*maxQUICConns {
		// Drop the replaced connections' entries.
		live := cr.quicAge[:0]
		for _, a := range cr.quicAge {
			if cr.live(a) {
				live = append(live, a)
			}
		}
		cr.quicAge = live
	}
}
