package wgpeer

import (
	"net/netip"
	"strings"
	"testing"
)

// wgQuickText is a wg-quick text as tlsresume renders it
// (wireguard.WGQuick).
const wgQuickText = `# a comment
[Interface]
PrivateKey = YNqHbfBQKaGvzefSSuufuhF9J8jHpWO5I8RSs8ur8Gk=
Address = 10.73.0.2/32, fd74:6c73:7265::2/128
DNS = 10.73.0.1, fd74:6c73:7265::1

[Peer]
PublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
Endpoint = 192.168.1.20:51820
AllowedIPs = 0.0.0.0/0, ::/0
`

// TestParseConfig: a wg-quick text as tlsresume renders it is read key by
// key, and a key an app would not know, a bad value or a missing key is
// refused.
func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(wgQuickText)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Address) != 2 || c.Address[1] != netip.MustParsePrefix("fd74:6c73:7265::2/128") || len(c.DNS) != 2 ||
		c.Endpoint != "192.168.1.20:51820" || len(c.AllowedIPs) != 2 || c.PrivateKey[0] != 0x60 || c.PeerKey[0] != 0x4e {
		t.Errorf("parsed %+v", c)
	}
	if u := c.UAPI("127.0.0.1:9"); !strings.Contains(u, "endpoint=127.0.0.1:9\n") || !strings.Contains(u, "allowed_ip=::/0\n") ||
		!strings.HasPrefix(u, "private_key=60") {
		t.Errorf("uapi:\n%s", u)
	}
	for _, bad := range []struct{ name, text string }{
		{"unknown key", strings.Replace(wgQuickText, "DNS =", "Dns =", 1)},
		{"short key", strings.Replace(wgQuickText, "PublicKey = T", "PublicKey = ", 1)},
		{"address without prefix", strings.Replace(wgQuickText, "Address = 10.73.0.2/32", "Address = 10.73.0.2", 1)},
		{"no equals sign", strings.Replace(wgQuickText, "Endpoint = ", "Endpoint ", 1)},
		{"no private key", strings.Replace(wgQuickText, "PrivateKey", "# PrivateKey", 1)},
		{"no address", strings.Replace(wgQuickText, "Address", "# Address", 1)},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := ParseConfig(bad.text); err == nil {
				t.Errorf("accepted:\n%s", bad.text)
			}
		})
	}
}

// FuzzParseConfig: any text is read without a panic, and a text that is
// accepted has both keys and an address, and gives a configuration-protocol
// text naming the endpoint.
func FuzzParseConfig(f *testing.F) {
	f.Add(wgQuickText)
	f.Add("[Interface]\nAddress = 10.73.0.2/32\n[Peer]\nAllowedIPs = ::/0\n")
	f.Add("[Peer]\nEndpoint = [fd00::1]:51820\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseConfig(text)
		if err != nil {
			return
		}
		if c.PrivateKey == [32]byte{} || c.PeerKey == [32]byte{} || len(c.Address) == 0 {
			t.Errorf("accepted without a key or an address: %+v", c)
		}
		if u := c.UAPI("127.0.0.1:9"); !strings.Contains(u, "\nendpoint=127.0.0.1:9\n") {
			t.Errorf("uapi lacks the endpoint:\n%s", u)
		}
	})
}
