package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestDeviceMetrics: /metrics carries each WireGuard device's counters
// under a device label, read at each scrape, and counts the records of
// devices by device and verdict.
func TestDeviceMetrics(t *testing.T) {
	counts := []DeviceCounts{{Name: "phone", TCPConns: 5, RefusedTCP: 2, DNSQueries: 7, QUICFlows: 1, OtherUDPFlows: 3,
		RefusedUDPFlows: 4, RxBytes: 1000, TxBytes: 2000, LastHandshake: time.Unix(1700000000, 0)}, {Name: "tablet"}}
	s := New(Config{Devices: func() []DeviceCounts { return counts }})
	s.Add(&inspect.ConnRecord{Record: inspect.Record{Source: inspect.SourceWireGuard, Device: "phone"}, ID: "c1",
		Verdict: inspect.Verdict{Code: inspect.CodeBothResumed}},
		&inspect.ConnRecord{Record: inspect.Record{Source: inspect.SourceConnect}, ID: "c2", Verdict: inspect.Verdict{Code: inspect.CodeBothResumed}})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tlsresume_wireguard_tcp_connections_total{device="phone"} 5`,
		`tlsresume_wireguard_refused_total{device="phone",transport="tcp"} 2`,
		`tlsresume_wireguard_refused_total{device="phone",transport="udp"} 4`,
		`tlsresume_wireguard_dns_queries_total{device="phone"} 7`,
		`tlsresume_wireguard_udp_flows_total{device="phone",kind="quic"} 1`,
		`tlsresume_wireguard_udp_flows_total{device="phone",kind="other"} 3`,
		`tlsresume_wireguard_bytes_total{device="phone",direction="received"} 1000`,
		`tlsresume_wireguard_bytes_total{device="phone",direction="sent"} 2000`,
		`tlsresume_wireguard_last_handshake_timestamp_seconds{device="phone"} 1.7e+09`,
		`tlsresume_wireguard_last_handshake_timestamp_seconds{device="tablet"} 0`,
		`tlsresume_device_connections_total{device="phone",verdict="both_resumed"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(body), `device=""`) {
		t.Error("a record from no device was counted under an empty device")
	}
}
