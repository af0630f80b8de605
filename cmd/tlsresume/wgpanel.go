package main

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tlsresume/tlsresume/proxy/web"
	"github.com/tlsresume/tlsresume/proxy/wgsource"
	"github.com/tlsresume/tlsresume/proxy/wireguard"
)

// wgPanel is the live view's web.WireGuardPanel over the WireGuard source.
// The view starts before WireGuard does: until startWireGuard has started
// the source (and chosen the endpoint), the panel says WireGuard is
// starting.
type wgPanel struct {
	src atomic.Pointer[wgsource.Source] // set once started
}

var errWGStarting = errors.New("WireGuard is starting")

func (p *wgPanel) started() (*wgsource.Source, error) {
	if s := p.src.Load(); s != nil {
		return s, nil
	}
	return nil, errWGStarting
}

func (p *wgPanel) Devices() ([]web.WireGuardDevice, error) {
	s, err := p.started()
	if err != nil {
		return nil, err
	}
	st, err := s.Stats()
	if err != nil {
		return nil, err
	}
	devs := map[string]wireguard.Device{}
	for _, d := range s.Devices() {
		devs[d.Name] = d
	}
	out := make([]web.WireGuardDevice, len(st))
	for i, d := range st {
		out[i] = web.WireGuardDevice{DeviceCounts: deviceCounts(d), IPv4: devs[d.Name].IPv4, IPv6: devs[d.Name].IPv6,
			PublicKey: d.PublicKey.String(), Seen: d.Endpoint, ActiveTCP: d.ActiveTCP, ActiveUDP: d.ActiveUDP}
	}
	return out, nil
}

func (p *wgPanel) Endpoint() (string, error) {
	s, err := p.started()
	if err != nil {
		return "", err
	}
	c, err := s.Endpoint()
	return c.Endpoint, err
}

func (p *wgPanel) Config(name string) ([]byte, error) {
	s, err := p.started()
	if err != nil {
		return nil, err
	}
	text, err := s.DeviceConfig(name)
	return []byte(text), err
}

func (p *wgPanel) QRPNG(name string) ([]byte, error) {
	text, err := p.Config(name)
	if err != nil {
		return nil, err
	}
	return wireguard.QRPNG(string(text))
}

func (p *wgPanel) AddDevice(name string) error {
	s, err := p.started()
	if err != nil {
		return err
	}
	if err := wireguard.CheckName(name); err != nil {
		return fmt.Errorf("%w: %v", web.ErrDeviceName, err)
	}
	_, _, err = s.AddDevice(name)
	if errors.Is(err, wgsource.ErrDeviceServed) {
		return fmt.Errorf("%w: %q", web.ErrDeviceServed, name)
	}
	return err
}

// deviceCounts is what /metrics shows of a device.
func deviceCounts(d wgsource.DeviceStats) web.DeviceCounts {
	return web.DeviceCounts{
		Name: d.Name, TCPConns: d.TCPConns, RefusedTCP: d.RefusedDestinations, DNSQueries: d.DNSQueries,
		QUICFlows: d.QUICFlows, OtherUDPFlows: d.OtherUDPFlows, RefusedUDPFlows: d.RefusedUDPFlows,
		RxBytes: d.RxBytes, TxBytes: d.TxBytes, LastHandshake: d.LastHandshake,
	}
}
