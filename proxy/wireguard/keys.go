package wireguard

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Key is a Curve25519 key, private or public, as WireGuard uses them.
type Key [32]byte

// NewPrivateKey returns a fresh private key, clamped as `wg genkey` clamps it
// (RFC 7748 §5), so that every tool shows the same bytes.
func NewPrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("wireguard: generating a key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// Public returns the public key of private key k.
func (k Key) Public() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// NewPrivateKey only fails on a length other than 32.
		panic("wireguard: X25519 private key: " + err.Error())
	}
	var pub Key
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// String returns the key in base64, the form of wg-quick files and `wg`.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// hex returns the key in hex, the form of WireGuard's configuration
// protocol (IpcSet, IpcGet).
func (k Key) hex() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the zero key (no key).
func (k Key) IsZero() bool { return k == Key{} }

// ParseKey reads a key in base64, as String writes it.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(Key{}) {
		return Key{}, fmt.Errorf("wireguard: reading a key: want 44 characters of base64 for 32 bytes")
	}
	return Key(b), nil
}

// parseHexKey reads a key in hex, as the configuration protocol writes it.
func parseHexKey(s string) (Key, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(Key{}) {
		return Key{}, fmt.Errorf("wireguard: reading a hex key %q: want 64 hex digits", s)
	}
	return Key(b), nil
}

// Device is one device that may connect: a phone, a tablet. Its private
// key is kept so that its configuration can be printed again; the server
// needs only the public one.
type Device struct {
	// Name names the device in records (`device`) and on the command line
	// (--peer NAME): 1 to 32 of a-z, 0-9 and '-', starting with a letter
	// or digit.
	Name string
	// PrivateKey is the device's own key, shown only in its configuration.
	PrivateKey Key
	// IPv4 and IPv6 are the device's tunnel addresses: its only source
	// addresses inside the tunnel (the server's AllowedIPs for it).
	IPv4, IPv6 netip.Addr
}

// PublicKey returns the device's public key, what the server knows it by.
func (d Device) PublicKey() Key { return d.PrivateKey.Public() }

// DefaultDevice is the device name used when none is given.
const DefaultDevice = "phone"

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// CheckName returns an error unless name is a valid device name. Names are
// file names and record fields, so they are kept to a plain alphabet.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("wireguard: device name %q: want 1 to 32 of a-z, 0-9 and '-', not starting with '-'", name)
	}
	return nil
}

// NewDevice makes a device with a fresh key pair and host number n's
// tunnel addresses (2 to 254), without storing it: Store.Device does that.
func NewDevice(name string, n int) (Device, error) {
	if err := CheckName(name); err != nil {
		return Device{}, err
	}
	if n < firstDeviceHost || n > lastDeviceHost {
		return Device{}, fmt.Errorf("wireguard: host number %d: want %d to %d", n, firstDeviceHost, lastDeviceHost)
	}
	k, err := NewPrivateKey()
	if err != nil {
		return Device{}, err
	}
	v4, v6 := hostAddrs(n)
	return Device{Name: name, PrivateKey: k, IPv4: v4, IPv6: v6}, nil
}
