package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tlsresume/tlsresume/inspect"
)

// metrics counts the records the view receives, for GET /metrics in
// Prometheus's text format. It has its own registry: nothing of the
// process's default one is exposed.
type metrics struct {
	reg         *prometheus.Registry
	conns       *prometheus.CounterVec
	deviceConns *prometheus.CounterVec
	clientHS    *prometheus.CounterVec
	upstreamHS  *prometheus.CounterVec
	handshake   *prometheus.HistogramVec
	open        prometheus.Gauge
	dropped     prometheus.Counter
	refused     *prometheus.CounterVec
	slowStreams *prometheus.CounterVec
	handlerHTTP http.Handler
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_connections_total", Help: "Connections recorded, by how they arrived and their verdict code.",
	}, []string{"source", "verdict"})
	m.deviceConns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_device_connections_total", Help: "Connections recorded from WireGuard devices, by device and verdict code.",
	}, []string{"device", "verdict"})
	m.clientHS = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_client_handshakes_total", Help: "Completed client handshakes with tlsresume, by TLS version and whether they resumed.",
	}, []string{"version", "resumed"})
	m.upstreamHS = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_upstream_handshakes_total", Help: "Completed upstream handshakes, by whether they resumed and what the upstream cache found.",
	}, []string{"resumed", "cache"})
	m.handshake = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tlsresume_handshake_duration_seconds", Help: "TLS handshake time of each leg (upstream: from the dial).",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"leg"})
	m.open = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tlsresume_open_connections", Help: "Connections open now (opened and not yet closed).",
	})
	m.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tlsresume_records_dropped_total", Help: "Record events the view lost because it fell behind the proxy.",
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_web_requests_refused_total", Help: "Requests the live view refused: a Host not its own (host), no token (token), another site's page (cross_site), too many event streams (streams_at_cap).",
	}, []string{"reason"})
	for _, r := range []string{"host", "token", "cross_site", "streams_at_cap"} {
		m.refused.WithLabelValues(r)
	}
	f(m.refused)
	m.slowStreams = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tlsresume_web_event_streams_dropped_total", Help: "Event streams (/api/events) the live view closed because their reader fell behind by more than its buffer (behind) or did not take a write in time (write_timeout); a reader reconnects with Last-Event-ID.",
	}, []string{"reason"})
	for _, r := range []string{"behind", "write_timeout"} {
		m.slowStreams.WithLabelValues(r)
	}
	f(m.slowStreams)
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tlsresume_web_event_streams", Help: "Event streams (/api/events) open now.",
	}, func() float64 { return float64(s.subs.count()) }))
	f(m.conns)
	f(m.deviceConns)
	if s.cfg.Devices != nil {
		f(deviceCollector{s.cfg.Devices})
	}
	f(m.clientHS)
	f(m.upstreamHS)
	f(m.handshake)
	f(m.open)
	f(m.dropped)
	if s.cfg.Upstream != nil {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tlsresume_upstream_cache_entries", Help: "Sessions held in tlsresume's upstream session cache.",
		}, func() float64 { return float64(s.cfg.Upstream.Stats().Entries) }))
	}
	if s.cfg.Refused != nil {
		for _, reason := range []string{"not_allowed", "at_cap", "evicted"} {
			f(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "tlsresume_connections_refused_total", ConstLabels: prometheus.Labels{"reason": reason},
				Help: "Client connections turned away at accept: outside --allow, at --max-conns, or evicted before their hello or request to make room.",
			}, func() float64 { return float64(s.cfg.Refused()[reason]) }))
		}
	}
	if s.cfg.Unwritten != nil {
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tlsresume_records_unwritten_total", Help: "Records the --log file could not take (a write failed).",
		}, func() float64 { return float64(s.cfg.Unwritten()) }))
	}
	m.handlerHTTP = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// observe counts one event: an open adds an open connection, a close
// takes it away (when its open was seen: closedOpen) and counts its record.
func (m *metrics) observe(ev inspect.Event, closedOpen bool) {
	if ev.Kind == inspect.EventOpen {
		m.open.Inc()
		return
	}
	r := ev.Record
	if closedOpen {
		m.open.Dec()
	}
	m.conns.WithLabelValues(string(r.Source), string(r.Verdict.Code)).Inc()
	if r.Device != "" {
		m.deviceConns.WithLabelValues(r.Device, string(r.Verdict.Code)).Inc()
	}
	if l := r.ClientLeg; l != nil && l.Error == "" {
		m.clientHS.WithLabelValues(l.Version, boolLabel(l.Resumed)).Inc()
		m.handshake.WithLabelValues("client").Observe(l.HandshakeMS / 1000)
	}
	if u := r.UpstreamLeg; u != nil && u.Error == "" {
		m.upstreamHS.WithLabelValues(boolLabel(u.Resumed), string(u.Cache)).Inc()
		m.handshake.WithLabelValues("upstream").Observe(u.HandshakeMS / 1000)
	}
}

func (m *metrics) streamDropped(n uint64) { m.dropped.Add(float64(n)) }

func (m *metrics) refuse(reason string) { m.refused.WithLabelValues(reason).Inc() }

func (m *metrics) dropStream(reason string) { m.slowStreams.WithLabelValues(reason).Inc() }

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
