package web

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DeviceCounts is one WireGuard device's counters as the proxy's WireGuard
// source keeps them (tlsresume proxy --wireguard), for /metrics: a device
// label of the few devices the proxy serves (--peer).
type DeviceCounts struct {
	Name string
	// TCPConns counts the device's TCP connections handed over, and
	// RefusedTCP those reset for their destination.
	TCPConns, RefusedTCP int64
	// DNSQueries counts what reached the tunnel's DNS address.
	DNSQueries int64
	// QUICFlows and OtherUDPFlows count UDP flows relayed (port 443 and
	// the rest), RefusedUDPFlows those dropped for their destination.
	QUICFlows, OtherUDPFlows, RefusedUDPFlows int64
	// RxBytes and TxBytes are WireGuard's bytes from and to the device.
	RxBytes, TxBytes uint64
	// LastHandshake is the last completed WireGuard handshake; zero if
	// none.
	LastHandshake time.Time
}

// deviceCollector reads Config.Devices at each scrape.
type deviceCollector struct {
	devices func() []DeviceCounts
}

var (
	descWGTCP = prometheus.NewDesc("tlsresume_wireguard_tcp_connections_total",
		"TCP connections WireGuard devices made through the tunnel, handed to the proxy or to the tunnel's DNS.", []string{"device"}, nil)
	descWGRefused = prometheus.NewDesc("tlsresume_wireguard_refused_total",
		"Device connections (tcp: reset and recorded) and UDP flows (udp: dropped) refused for their destination: this machine without --wireguard-local, the tunnel's own addresses, tlsresume itself.", []string{"device", "transport"}, nil)
	descWGDNS = prometheus.NewDesc("tlsresume_wireguard_dns_queries_total",
		"DNS queries (UDP) and connections (TCP) to the tunnel's DNS address.", []string{"device"}, nil)
	descWGUDP = prometheus.NewDesc("tlsresume_wireguard_udp_flows_total",
		"UDP flows of devices relayed to their destination: quic (port 443) or other.", []string{"device", "kind"}, nil)
	descWGBytes = prometheus.NewDesc("tlsresume_wireguard_bytes_total",
		"WireGuard's bytes from (received) and to (sent) each device, encrypted, with WireGuard's headers.", []string{"device", "direction"}, nil)
	descWGHandshake = prometheus.NewDesc("tlsresume_wireguard_last_handshake_timestamp_seconds",
		"When each device last completed a WireGuard handshake (Unix time); 0 if never. A device in use hands shake at least every two minutes.", []string{"device"}, nil)
)

func (c deviceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWGTCP, descWGRefused, descWGDNS, descWGUDP, descWGBytes, descWGHandshake} {
		ch <- d
	}
}

func (c deviceCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, d := range c.devices() {
		counter(descWGTCP, float64(d.TCPConns), d.Name)
		counter(descWGRefused, float64(d.RefusedTCP), d.Name, "tcp")
		counter(descWGRefused, float64(d.RefusedUDPFlows), d.Name, "udp")
		counter(descWGDNS, float64(d.DNSQueries), d.Name)
		counter(descWGUDP, float64(d.QUICFlows), d.Name, "quic")
		counter(descWGUDP, float64(d.OtherUDPFlows), d.Name, "other")
		counter(descWGBytes, float64(d.RxBytes), d.Name, "received")
		counter(descWGBytes, float64(d.TxBytes), d.Name, "sent")
		seen := 0.0
		if !d.LastHandshake.IsZero() {
			seen = float64(d.LastHandshake.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descWGHandshake, prometheus.GaugeValue, seen, d.Name)
	}
}
