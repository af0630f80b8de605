package web

import (
	"encoding/json"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"net/netip"
	"time"

	"github.com/tlsresume/tlsresume/certs"
	"github.com/tlsresume/tlsresume/proxy/capage"
)

// WireGuardPanel is the proxy's WireGuard server (tlsresume proxy
// --wireguard) as the view's device page sees it: the devices and their
// counters, and what a phone installs. The view imports nothing of
// WireGuard's; cmd/tlsresume implements this over proxy/wgsource.
type WireGuardPanel interface {
	// Devices returns the devices that may connect, in the order
	// configured, with what is known of each now.
	Devices() ([]WireGuardDevice, error)
	// Endpoint is the HOST:PORT written in the devices' configurations,
	// or why there is none (then the configurations cannot be made).
	Endpoint() (string, error)
	// Config returns the wg-quick text the named device installs. It holds
	// the device's private key.
	Config(name string) ([]byte, error)
	// QRPNG returns Config(name) as a QR code in a PNG image.
	QRPNG(name string) ([]byte, error)
	// AddDevice lets one more device connect from now on, its keys
	// created on first use of the name. An error wraps ErrDeviceName for
	// a name a device cannot have, ErrDeviceServed for one already
	// served.
	AddDevice(name string) error
}

// The errors of WireGuardPanel.AddDevice that are the asker's to mend.
var (
	ErrDeviceName   = errors.New("not a device name")
	ErrDeviceServed = errors.New("already one of the proxy's devices")
)

// WireGuardDevice is one device as the device page shows it. It holds no
// private key.
type WireGuardDevice struct {
	DeviceCounts
	// IPv4 and IPv6 are the device's tunnel addresses.
	IPv4, IPv6 netip.Addr
	// PublicKey is the device's public key, base64, as its app shows it.
	PublicKey string
	// Seen is the UDP address the device last sent from, "" before its
	// first handshake.
	Seen string
	// ActiveTCP and ActiveUDP are its connections and UDP flows open now.
	ActiveTCP, ActiveUDP int64
}

// wgDevices is GET /api/wireguard/devices.
type wgDevices struct {
	Endpoint      string     `json:"endpoint"`
	EndpointError string     `json:"endpoint_error,omitempty"`
	Devices       []wgDevice `json:"devices"`
}

type wgDevice struct {
	Name          string     `json:"name"`
	IPv4          netip.Addr `json:"ipv4"`
	IPv6          netip.Addr `json:"ipv6"`
	PublicKey     string     `json:"public_key"`
	Seen          string     `json:"seen,omitempty"`
	LastHandshake *time.Time `json:"last_handshake"`             // null: never
	HandshakeAge  *int64     `json:"handshake_age_ms,omitempty"` // by the view's clock, not the browser's
	RxBytes       uint64     `json:"rx_bytes"`
	TxBytes       uint64     `json:"tx_bytes"`
	TCPConns      int64      `json:"tcp_connections"`
	ActiveTCP     int64      `json:"active_tcp"`
	QUICFlows     int64      `json:"quic_flows"`
	OtherUDPFlows int64      `json:"other_udp_flows"`
	ActiveUDP     int64      `json:"active_udp"`
	DNSQueries    int64      `json:"dns_queries"`
	RefusedTCP    int64      `json:"refused_tcp"`
	RefusedUDP    int64      `json:"refused_udp"`
}

func newWGDevice(d WireGuardDevice, now time.Time) wgDevice {
	out := wgDevice{Name: d.Name, IPv4: d.IPv4, IPv6: d.IPv6, PublicKey: d.PublicKey, Seen: d.Seen,
		RxBytes: d.RxBytes, TxBytes: d.TxBytes, TCPConns: d.TCPConns, ActiveTCP: d.ActiveTCP,
		QUICFlows: d.QUICFlows, OtherUDPFlows: d.OtherUDPFlows, ActiveUDP: d.ActiveUDP,
		DNSQueries: d.DNSQueries, RefusedTCP: d.RefusedTCP, RefusedUDP: d.RefusedUDPFlows}
	if t := d.LastHandshake; !t.IsZero() {
		age := max(now.Sub(t), 0).Milliseconds()
		out.LastHandshake, out.HandshakeAge = &t, &age
	}
	return out
}

var devicesPage = template.Must(template.ParseFS(uiFiles, "ui/devices.html"))

// devicesData is what the device page's template needs: the CA's install
// steps for phones. The devices come from the API.
type devicesData struct {
	Source string
	CA     *certs.CA
	Phones []capage.Phone
}

// handleDevices serves GET /devices: the device page.
func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request) {
	if s.cfg.WireGuard == nil {
		httpError(w, "no WireGuard devices here: tlsresume proxy --wireguard serves them", http.StatusNotFound)
		return
	}
	d := devicesData{Source: s.cfg.Source, CA: s.cfg.CA}
	if s.cfg.CA != nil {
		d.Phones = capage.Phones(s.cfg.CA)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	devicesPage.Execute(w, d)
}

// handleWGDevices serves GET /api/wireguard/devices: each device and its
// counters, never a private key.
func (s *Server) handleWGDevices(w http.ResponseWriter, r *http.Request) {
	if !s.hasWireGuard(w) {
		return
	}
	devs, err := s.cfg.WireGuard.Devices()
	if err != nil {
		httpError(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	out := wgDevices{Devices: make([]wgDevice, 0, len(devs))}
	if out.Endpoint, err = s.cfg.WireGuard.Endpoint(); err != nil {
		out.EndpointError = err.Error()
	}
	now := time.Now()
	for _, d := range devs {
		out.Devices = append(out.Devices, newWGDevice(d, now))
	}
	writeJSON(w, out)
}

// handleWGConfig serves GET /api/wireguard/config?peer=NAME: the device's
// wg-quick file, to download. It holds the device's private key.
func (s *Server) handleWGConfig(w http.ResponseWriter, r *http.Request) {
	s.serveSecret(w, r, func(p WireGuardPanel, name string) ([]byte, error) { return p.Config(name) }, "text/plain; charset=utf-8", ".conf")
}

// handleWGQR serves GET /api/wireguard/qr?peer=NAME: the device's
// configuration as a QR code, a PNG, for its WireGuard app to scan.
func (s *Server) handleWGQR(w http.ResponseWriter, r *http.Request) {
	s.serveSecret(w, r, func(p WireGuardPanel, name string) ([]byte, error) { return p.QRPNG(name) }, "image/png", "")
}

// serveSecret answers with what get returns for the device ?peer names,
// as contentType; with ext, as an attachment NAME+ext. Nothing of it is
// stored (no-store) or logged. The guard has already refused other sites'
// pages and requests without the token, and set nosniff and no-referrer.
func (s *Server) serveSecret(w http.ResponseWriter, r *http.Request, get func(WireGuardPanel, string) ([]byte, error), contentType, ext string) {
	if !s.hasWireGuard(w) {
		return
	}
	name, ok := s.knownDevice(w, r.URL.Query().Get("peer"))
	if !ok {
		return
	}
	b, err := get(s.cfg.WireGuard, name)
	if err != nil {
		httpError(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if ext != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ext}))
	}
	w.Write(b)
}

// handleWGAdd serves POST /api/wireguard/devices {"name": "tablet"}: one
// more device, served at once (its keys are created on first use of the
// name). 201 with the device (no private key: its QR code and .conf are
// the endpoints above), 400 for a name a device cannot have, 409 for one
// already served. The guard has refused other sites' pages and requests
// without the token: a POST from elsewhere never gets here.
func (s *Server) handleWGAdd(w http.ResponseWriter, r *http.Request) {
	if !s.hasWireGuard(w) {
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil {
		httpError(w, `want a JSON body {"name": "tablet"}: `+err.Error(), http.StatusBadRequest)
		return
	}
	err := s.cfg.WireGuard.AddDevice(req.Name)
	switch {
	case errors.Is(err, ErrDeviceName):
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	case errors.Is(err, ErrDeviceServed):
		httpError(w, err.Error(), http.StatusConflict)
		return
	case err != nil:
		httpError(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	devs, err := s.cfg.WireGuard.Devices()
	if err != nil {
		httpError(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	for _, d := range devs {
		if d.Name == req.Name {
			writeJSONStatus(w, http.StatusCreated, newWGDevice(d, time.Now()))
			return
		}
	}
	httpError(w, "the device was added but is not listed", http.StatusInternalServerError)
}

// knownDevice returns the name if it is one of the panel's devices, or
// answers not found.
func (s *Server) knownDevice(w http.ResponseWriter, name string) (string, bool) {
	devs, err := s.cfg.WireGuard.Devices()
	if err != nil {
		httpError(w, err.Error(), http.StatusServiceUnavailable)
		return "", false
	}
	for _, d := range devs {
		if name != "" && d.Name == name {
			return d.Name, true
		}
	}
	httpError(w, "peer: want the name of one of the proxy's WireGuard devices (--peer)", http.StatusNotFound)
	return "", false
}

func (s *Server) hasWireGuard(w http.ResponseWriter) bool {
	if s.cfg.WireGuard == nil {
		httpError(w, "no WireGuard here: tlsresume proxy --wireguard serves devices", http.StatusNotFound)
		return false
	}
	return true
}

// wireguardRoutes adds the device page and its API. Every one of them is
// behind the guard, and none is public: another site's page may not even
// link to them.
func (s *Server) wireguardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /devices", s.handleDevices)
	mux.HandleFunc("GET /api/wireguard/devices", s.handleWGDevices)
	mux.HandleFunc("POST /api/wireguard/devices", s.handleWGAdd)
	mux.HandleFunc("GET /api/wireguard/config", s.handleWGConfig)
	mux.HandleFunc("GET /api/wireguard/qr", s.handleWGQR)
}
