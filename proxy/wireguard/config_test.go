package wireguard

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

// TestNewRefuses: configurations New must refuse, each with its reason.
func TestNewRefuses(t *testing.T) {
	key, _ := NewPrivateKey()
	phone, _ := NewDevice("phone", 2)
	tablet, _ := NewDevice("tablet", 3)
	sameAddr, _ := NewDevice("other", 2)
	sameKey := tablet
	sameKey.Name = "copy"
	sameKey.IPv4, sameKey.IPv6 = hostAddrs(4)
	outside := phone
	outside.Name, outside.IPv4 = "outside", netip.MustParseAddr("192.168.1.9")
	handle := func(net.Conn, netip.AddrPort, string) {}
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key", Config{HandleTCP: handle}, "no server key"},
		{"no handler", Config{ServerKey: key}, "neither HandleTCP nor HandleUDP"},
		{"small mtu", Config{ServerKey: key, HandleTCP: handle, MTU: 1000}, "MTU 1000"},
		{"bad listen address", Config{ServerKey: key, HandleTCP: handle, ListenAddr: "nowhere:x"}, "listen address"},
		{"negative limit", Config{ServerKey: key, HandleTCP: handle, MaxUDPFlows: -1}, "negative"},
		{"bad name", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{{Name: "A"}}}, "device name"},
		{"no device key", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{{Name: "a"}}}, "has no key"},
		{"outside the prefix", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{outside}}, "not in the tunnel prefixes"},
		{"same name", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{phone, phone}}, "already known"},
		{"same address", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{phone, sameAddr}}, `is device "phone"'s`},
		{"same key", Config{ServerKey: key, HandleTCP: handle, Devices: []Device{tablet, sameKey}}, `its key is device "tablet"'s`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	s, err := New(Config{ServerKey: key, HandleTCP: handle, Devices: []Device{phone}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(sameAddr); err == nil || !strings.Contains(err.Error(), `is device "phone"'s`) {
		t.Errorf("AddDevice with phone's address: %v", err)
	}
	if err := s.AddDevice(tablet); err != nil {
		t.Errorf("AddDevice(tablet) before Start: %v", err)
	}
}
