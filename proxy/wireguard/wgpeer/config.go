package wgpeer

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// Config is a wg-quick configuration for one peer, as a WireGuard app
// reads it from a file or a QR code.
type Config struct {
	PrivateKey [32]byte       // [Interface] PrivateKey: the device's own key
	Address    []netip.Prefix // [Interface] Address: its tunnel addresses
	DNS        []netip.Addr   // [Interface] DNS
	PeerKey    [32]byte       // [Peer] PublicKey: the server's key
	Endpoint   string         // [Peer] Endpoint, HOST:PORT
	AllowedIPs []netip.Prefix // [Peer] AllowedIPs: what goes through the tunnel
}

// ParseConfig reads the keys a wg-quick text for one peer may hold
// (Interface: PrivateKey, Address, DNS; Peer: PublicKey, Endpoint,
// AllowedIPs), refusing any other, as an app fails on a misspelt one.
func ParseConfig(text string) (Config, error) {
	var c Config
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "[Interface]" || line == "[Peer]" {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("wgpeer: line %d: %q has no '='", n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch section + k {
		case "[Interface]PrivateKey":
			c.PrivateKey, err = parseKey(v)
		case "[Interface]Address":
			c.Address, err = parseList(v, netip.ParsePrefix)
		case "[Interface]DNS":
			c.DNS, err = parseList(v, netip.ParseAddr)
		case "[Peer]PublicKey":
			c.PeerKey, err = parseKey(v)
		case "[Peer]Endpoint":
			c.Endpoint = v
		case "[Peer]AllowedIPs":
			c.AllowedIPs, err = parseList(v, netip.ParsePrefix)
		default:
			return c, fmt.Errorf("wgpeer: line %d: unknown key %q in section %q", n, k, section)
		}
		if err != nil {
			return c, fmt.Errorf("wgpeer: line %d: %s: %w", n, k, err)
		}
	}
	switch {
	case c.PrivateKey == [32]byte{}:
		return c, fmt.Errorf("wgpeer: no [Interface] PrivateKey")
	case c.PeerKey == [32]byte{}:
		return c, fmt.Errorf("wgpeer: no [Peer] PublicKey")
	case len(c.Address) == 0:
		return c, fmt.Errorf("wgpeer: no [Interface] Address")
	}
	return c, nil
}

func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("want 44 characters of base64 for 32 bytes")
	}
	copy(k[:], b)
	return k, nil
}

func parseList[T any](v string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, s := range strings.Split(v, ",") {
		x, err := parse(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// UAPI is WireGuard's configuration-protocol text (device.IpcSet) for c,
// sending to endpoint.
func (c Config) UAPI(endpoint string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\npublic_key=%s\nendpoint=%s\n",
		hex.EncodeToString(c.PrivateKey[:]), hex.EncodeToString(c.PeerKey[:]), endpoint)
	for _, a := range c.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", a)
	}
	return b.String()
}
