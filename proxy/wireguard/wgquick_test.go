package wireguard

import (
	"bytes"
	"image/png"
	"net"
	"net/netip"
	"strings"
	"testing"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/tlsresume/tlsresume/proxy/wireguard/wgpeer"
)

// TestWGQuick: the rendered file reads back, through a wg-quick parser
// that refuses unknown keys, as the device's key and addresses, the
// server's DNS, the server's public key and endpoint, and all traffic.
func TestWGQuick(t *testing.T) {
	server, _ := NewPrivateKey()
	d, err := NewDevice("phone", 7)
	if err != nil {
		t.Fatal(err)
	}
	text, err := WGQuick(d, server, "192.168.1.20:51820")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text)
	c := parseWGQuick(t, text)
	s4, s6 := ServerAddrs()
	want := wgpeer.Config{
		PrivateKey: d.PrivateKey,
		Address:    []netip.Prefix{netip.MustParsePrefix("10.73.0.7/32"), netip.MustParsePrefix("fd74:6c73:7265::7/128")},
		DNS:        []netip.Addr{s4, s6},
		PeerKey:    server.Public(),
		Endpoint:   "192.168.1.20:51820",
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
	}
	if c.PrivateKey != want.PrivateKey || c.PeerKey != want.PeerKey || c.Endpoint != want.Endpoint ||
		!equal(c.Address, want.Address) || !equal(c.DNS, want.DNS) || !equal(c.AllowedIPs, want.AllowedIPs) {
		t.Errorf("read back %+v, want %+v", c, want)
	}
	if !strings.Contains(text, "private key") {
		t.Error("the file does not warn that it holds a private key")
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCheckEndpoint: what --endpoint accepts.
func TestCheckEndpoint(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"192.168.1.20:51820", true},
		{"[fd00::20]:51820", true},
		{"laptop.local:51820", true},
		{"192.168.1.20", false},
		{":51820", false},
		{"192.168.1.20:0", false},
		{"192.168.1.20:70000", false},
		{"fd00::20:51820", false},
		{"a b:1", false},
	} {
		if _, err := checkEndpoint(tt.in); (err == nil) != tt.ok {
			t.Errorf("checkEndpoint(%q): %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// TestKeys: a key round-trips through base64 and hex, is clamped as `wg
// genkey` clamps, and its public key is X25519's (RFC 7748 §6.1 vectors).
func TestKeys(t *testing.T) {
	k, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Errorf("key %x is not clamped", k)
	}
	if back, err := ParseKey(k.String()); err != nil || back != k {
		t.Errorf("base64 round trip: %v", err)
	}
	if back, err := parseHexKey(k.hex()); err != nil || back != k {
		t.Errorf("hex round trip: %v", err)
	}
	alice, _ := parseHexKey("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	if got := alice.Public().hex(); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Errorf("public key %s, want RFC 7748's", got)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 42) + "=="} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}

// TestChooseEndpoint: the LAN address beats docker's bridge, a VPN and
// loopback whatever their order; virtual ones are the fallback; an
// address given wins.
func TestChooseEndpoint(t *testing.T) {
	up := net.FlagUp | net.FlagBroadcast
	c := func(name string, flags net.Flags, a string) Candidate {
		return candidate(name, flags, netip.MustParseAddr(a))
	}
	all := []Candidate{
		c("lo", net.FlagUp|net.FlagLoopback, "127.0.0.1"),
		c("docker0", up, "172.17.0.1"),
		c("tailscale0", net.FlagUp|net.FlagPointToPoint, "100.101.102.103"),
		c("wg0", net.FlagUp|net.FlagPointToPoint, "10.8.0.2"),
		c("eth1", 0, "192.168.5.5"), // down
		c("wlan0", up, "fe80::1"),
		c("wlan0", up, "192.168.1.20"),
		c("eth0", up, "203.0.113.7"),
	}
	got, err := chooseFrom(all, 51820)
	if err != nil || got.Endpoint != "192.168.1.20:51820" || got.Interface != "wlan0" {
		t.Fatalf("chose %+v (%v), want wlan0 192.168.1.20:51820", got, err)
	}
	var others []string
	for _, o := range got.Others {
		others = append(others, o.String())
	}
	if want := "docker0 172.17.0.1 (virtual), tailscale0 100.101.102.103 (virtual), wg0 10.8.0.2 (virtual), eth0 203.0.113.7 (not private)"; strings.Join(others, ", ") != want {
		t.Errorf("others %q, want %q", strings.Join(others, ", "), want)
	}
	if d := got.Describe(); !strings.Contains(d, "interface wlan0") || !strings.Contains(d, "docker0 172.17.0.1") || !strings.Contains(d, "--endpoint") {
		t.Errorf("Describe: %q", d)
	}
	if got, _ := chooseFrom(all[:4], 51820); got.Interface != "docker0" {
		t.Errorf("without a LAN chose %q, want the first virtual one, docker0", got.Interface)
	}
	if _, err := chooseFrom(all[:1], 51820); err == nil {
		t.Error("loopback alone was chosen")
	}
	given, err := ChooseEndpoint("10.0.0.5:4242", 51820)
	if err != nil || given.Endpoint != "10.0.0.5:4242" || given.Interface != "" || !strings.Contains(given.Describe(), "given") {
		t.Errorf("given endpoint: %+v %v", given, err)
	}
	if _, err := ChooseEndpoint("10.0.0.5", 51820); err == nil {
		t.Error("an endpoint without a port was accepted")
	}
	// This machine's own interfaces: whatever is chosen is a valid endpoint.
	if got, err := ChooseEndpoint("", 51820); err == nil {
		if _, err := checkEndpoint(got.Endpoint); err != nil {
			t.Errorf("chose %q on this machine: %v", got.Endpoint, err)
		}
		t.Logf("this machine: %s", got.Describe())
	}
}

// TestQR: the terminal rendering maps back, half block by half block, to
// the QR code's modules, fits in 120 columns for a real configuration, and
// the PNG decodes at 8 pixels per module.
func TestQR(t *testing.T) {
	server, _ := NewPrivateKey()
	d, _ := NewDevice("a-long-device-name-for-the-width", 254)
	text, err := WGQuick(d, server, "[fd12:3456:789a:1::20]:51820")
	if err != nil {
		t.Fatal(err)
	}
	for _, invert := range []bool{false, true} {
		term, err := QRTerminal(text, invert)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(term, "\n"), "\n")
		width := len([]rune(lines[0]))
		if width > 120 || width < 21+8 {
			t.Errorf("width %d columns, want 29 to 120", width)
		}
		bitmap := qrBitmap(t, text)
		if len(lines) != (len(bitmap)+1)/2 {
			t.Fatalf("%d lines for %d rows", len(lines), len(bitmap))
		}
		for y, line := range lines {
			for x, r := range []rune(line) {
				upper := strings.ContainsRune("▀█", r)
				lower := strings.ContainsRune("▄█", r)
				if upper != (bitmap[2*y][x] == invert) || (2*y+1 < len(bitmap) && lower != (bitmap[2*y+1][x] == invert)) {
					t.Fatalf("invert=%v: cell %d,%d is %q, modules %v/%v", invert, x, y, r, bitmap[2*y][x], 2*y+1 < len(bitmap) && bitmap[2*y+1][x])
				}
			}
		}
		if !invert {
			t.Logf("%d columns × %d lines:\n%s", width, len(lines), term)
		}
	}
	b, err := QRPNG(text)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if w := img.Bounds().Dx(); w != 8*len(qrBitmap(t, text)) {
		t.Errorf("PNG %d pixels wide, want 8 per module", w)
	}
}

// qrBitmap is the QR code's modules, quiet zone included (true = dark).
func qrBitmap(t *testing.T, text string) [][]bool {
	t.Helper()
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		t.Fatal(err)
	}
	return q.Bitmap()
}
