package wgsource

import (
	"sync/atomic"

	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// device is a device and what the source counts of it.
type device struct {
	wireguard.Device
	dnsQueries atomic.Int64 // DNS queries over UDP, and connections over TCP, to the tunnel's DNS address
	refusedTCP atomic.Int64 // connections refused for their destination (reset, recorded)
	refusedUDP atomic.Int64 // flows dropped for their destination
	failedUDP  atomic.Int64 // flows whose destination could not be dialled
	quicFlows  atomic.Int64 // UDP flows to port 443 handed to Config.QUIC
	otherFlows atomic.Int64 // other UDP flows relayed
}

// DeviceStats is what is known of one device now: the WireGuard server's
// counters and the source's. The live view's device page and /metrics
// read it.
type DeviceStats struct {
	wireguard.DeviceStats
	// DNSQueries counts what reached the tunnel's DNS address: queries
	// over UDP, connections over TCP.
	DNSQueries int64
	// RefusedDestinations counts TCP connections refused for their
	// destination (see Config.Local): each was reset and recorded.
	RefusedDestinations int64
	// QUICFlows and OtherUDPFlows count UDP flows relayed, to port 443
	// and to other ports; RefusedUDPFlows those dropped for their
	// destination, FailedUDPFlows those whose destination could not be
	// dialled.
	QUICFlows, OtherUDPFlows, RefusedUDPFlows, FailedUDPFlows int64
}

// Stats returns every device's statistics, in the order configured.
func (s *Source) Stats() ([]DeviceStats, error) {
	wgs, err := s.wg.Stats()
	if err != nil {
		return nil, err
	}
	out := make([]DeviceStats, 0, len(wgs))
	for _, w := range wgs {
		d := s.device(w.Name)
		out = append(out, DeviceStats{
			DeviceStats: w, DNSQueries: d.dnsQueries.Load(), RefusedDestinations: d.refusedTCP.Load(),
			QUICFlows: d.quicFlows.Load(), OtherUDPFlows: d.otherFlows.Load(),
			RefusedUDPFlows: d.refusedUDP.Load(), FailedUDPFlows: d.failedUDP.Load(),
		})
	}
	return out, nil
}
