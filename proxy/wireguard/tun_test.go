package wireguard

import (
	"net/netip"
	"testing"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ipPacket builds an IPv4 or IPv6 packet from the device to dst carrying
// proto's payload, as WireGuard hands it to the tun device.
func ipPacket(t testing.TB, dst netip.Addr, proto byte, payload []byte) []byte {
	t.Helper()
	if dst.Is4() {
		h := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 73, 0, 2}
		h = append(h, dst.AsSlice()...)
		n := len(h) + len(payload)
		h[2], h[3] = byte(n>>8), byte(n)
		return append(h, payload...)
	}
	h := []byte{0x60, 0, 0, 0, byte(len(payload) >> 8), byte(len(payload)), proto, 64}
	src := netip.MustParseAddr("fd74:6c73:7265::2")
	h = append(append(h, src.AsSlice()...), dst.AsSlice()...)
	return append(h, payload...)
}

func echoRequest(t testing.TB, v6 bool) []byte {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 1, Seq: 1}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDropEcho: which packets the tun device drops before the netstack
// sees them: echo requests to any address but the server's.
func TestDropEcho(t *testing.T) {
	s4, s6 := ServerAddrs()
	far4, far6 := farV4.Addr(), farV6.Addr()
	reply, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 1, Seq: 1}}).Marshal(nil)
	for _, tt := range []struct {
		name string
		pkt  []byte
		drop bool
	}{
		{"echo to the server", ipPacket(t, s4, 1, echoRequest(t, false)), false},
		{"echo far", ipPacket(t, far4, 1, echoRequest(t, false)), true},
		{"echo6 to the server", ipPacket(t, s6, 58, echoRequest(t, true)), false},
		{"echo6 far", ipPacket(t, far6, 58, echoRequest(t, true)), true},
		{"echo reply far", ipPacket(t, far4, 1, reply), false},
		{"udp far", ipPacket(t, far4, 17, make([]byte, 8)), false},
		{"truncated", ipPacket(t, far4, 1, nil), false},
		{"empty", nil, false},
	} {
		if got := dropEcho(tt.pkt); got != tt.drop {
			t.Errorf("%s: dropEcho %v, want %v", tt.name, got, tt.drop)
		}
	}
}

// FuzzDropEcho: any bytes are judged without a panic, and only an IP
// packet carrying ICMP (protocol 1 or next header 58) is ever dropped.
func FuzzDropEcho(f *testing.F) {
	f.Add(ipPacket(f, farV4.Addr(), 1, echoRequest(f, false)))
	f.Add(ipPacket(f, farV6.Addr(), 58, echoRequest(f, true)))
	f.Add([]byte{0x4f, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if !dropEcho(pkt) {
			return
		}
		v4 := len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == 1
		v6 := len(pkt) > 40 && pkt[0]>>4 == 6 && pkt[6] == 58
		if !v4 && !v6 {
			t.Errorf("dropped % x, which is no ICMP packet", pkt)
		}
	})
}
