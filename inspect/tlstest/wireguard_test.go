package tlstest

import (
	"net/netip"
	"strings"
	"testing"
)

// TestParseWGConf: a wg-quick text as tlsresume renders it is read key by
// key, and a key an app would not know is refused.
func TestParseWGConf(t *testing.T) {
	const text = `# a comment
[Interface]
PrivateKey = YNqHbfBQKaGvzefSSuufuhF9J8jHpWO5I8RSs8ur8Gk=
Address = 10.73.0.2/32, fd74:6c73:7265::2/128
DNS = 10.73.0.1, fd74:6c73:7265::1

[Peer]
PublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=
Endpoint = 192.168.1.20:51820
AllowedIPs = 0.0.0.0/0, ::/0
`
	c, err := ParseWGConf(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Address) != 2 || c.Address[1] != netip.MustParsePrefix("fd74:6c73:7265::2/128") || len(c.DNS) != 2 ||
		c.Endpoint != "192.168.1.20:51820" || len(c.AllowedIPs) != 2 || c.PrivateKey[0] != 0x60 || c.PeerKey[0] != 0x4e {
		t.Errorf("parsed %+v", c)
	}
	for _, bad := range []string{
		strings.Replace(text, "DNS =", "Dns =", 1),
		strings.Replace(text, "PublicKey = T", "PublicKey = ", 1),
		strings.Replace(text, "Address = 10.73.0.2/32", "Address = 10.73.0.2", 1),
	} {
		if _, err := ParseWGConf(bad); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}
