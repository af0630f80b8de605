package wireguard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// The keys live beside the CA, in its directory's wireguard folder:
//
//	wireguard/           0700
//	  server.key         0600  the server's private key, base64 (as `wg genkey` writes it)
//	  devices/           0700
//	    phone.json       0600  {"name", "private_key", "ipv4", "ipv6"}
//	  .lock                    held while a device is being created
//
// Every file is written once and never rewritten; a device is forgotten by
// deleting its file (its phone then gets nothing, as an unknown key does).
const (
	stateDirName   = "wireguard"
	serverKeyName  = "server.key"
	devicesDirName = "devices"
	lockName       = ".lock"
)

// Store is the WireGuard state in a CA directory: the server key and the
// devices. It is safe for concurrent use, and two processes (the proxy and
// `tlsresume wireguard config`) may create devices at the same time.
type Store struct {
	dir       string // the wireguard folder
	serverKey Key
	mu        sync.Mutex // serialises device creation within the process
}

// deviceFile is a device's file: the device, with its addresses as text.
type deviceFile struct {
	Name       string     `json:"name"`
	PrivateKey string     `json:"private_key"`
	IPv4       netip.Addr `json:"ipv4"`
	IPv6       netip.Addr `json:"ipv6"`
}

// OpenStore opens the WireGuard state in caDir (the CA directory, see
// certs.Dir), creating caDir, its wireguard folder and the server key on
// first use. It refuses a directory others may write and a key file others
// may read.
func OpenStore(caDir string) (*Store, error) {
	if _, err := os.Stat(caDir); errors.Is(err, fs.ErrNotExist) {
		if err := refuseSourceTree(caDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(caDir, 0o700); err != nil {
			return nil, fmt.Errorf("wireguard: creating the CA directory: %w", err)
		}
	}
	if err := checkDir(caDir); err != nil {
		return nil, err
	}
	s := &Store{dir: filepath.Join(caDir, stateDirName)}
	if err := mkdirPrivate(s.dir); err != nil {
		return nil, err
	}
	if err := mkdirPrivate(filepath.Join(s.dir, devicesDirName)); err != nil {
		return nil, err
	}
	k, err := s.loadOrCreateServerKey()
	if err != nil {
		return nil, err
	}
	s.serverKey = k
	return s, nil
}

// Dir returns the wireguard folder.
func (s *Store) Dir() string { return s.dir }

// ServerKey returns the server's private key.
func (s *Store) ServerKey() Key { return s.serverKey }

// DeviceFile returns the path of the named device's file.
func (s *Store) DeviceFile(name string) string {
	return filepath.Join(s.dir, devicesDirName, name+".json")
}

func (s *Store) loadOrCreateServerKey() (Key, error) {
	path := filepath.Join(s.dir, serverKeyName)
	data, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, gerr := NewPrivateKey()
		if gerr != nil {
			return Key{}, gerr
		}
		err = writeNew(path, []byte(k.String()+"\n"))
		if err == nil {
			return k, nil
		}
		if errors.Is(err, fs.ErrExist) { // another process was first: use its key
			data, err = readKeyFile(path)
		}
	}
	if err != nil {
		return Key{}, err
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return Key{}, fmt.Errorf("wireguard: %s: %w", path, err)
	}
	return k, nil
}

// Devices returns every stored device, ordered by address. It reads the
// folder afresh, so it sees devices another process created.
func (s *Store) Devices() ([]Device, error) {
	dir := filepath.Join(s.dir, devicesDirName)
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("wireguard: listing devices: %w", err)
	}
	var devs []Device
	byAddr := map[netip.Addr]string{}
	for _, path := range names {
		d, err := readDevice(path)
		if err != nil {
			return nil, err
		}
		if other, dup := byAddr[d.IPv4]; dup {
			return nil, fmt.Errorf("wireguard: devices %q and %q share the tunnel address %s; delete one of their files in %s", other, d.Name, d.IPv4, dir)
		}
		byAddr[d.IPv4] = d.Name
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b Device) int { return a.IPv4.Compare(b.IPv4) })
	return devs, nil
}

// readDevice reads and checks one device file.
func readDevice(path string) (Device, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return Device{}, err
	}
	var f deviceFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Device{}, fmt.Errorf("wireguard: reading device file %s: %w", path, err)
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".json"); f.Name != want {
		return Device{}, fmt.Errorf("wireguard: device file %s names %q; want %q", path, f.Name, want)
	}
	k, err := ParseKey(f.PrivateKey)
	if err != nil {
		return Device{}, fmt.Errorf("wireguard: device file %s: %w", path, err)
	}
	n, err := hostNumber(f.IPv4)
	if err != nil {
		return Device{}, fmt.Errorf("wireguard: device file %s: %w", path, err)
	}
	if _, v6 := hostAddrs(n); f.IPv6 != v6 {
		return Device{}, fmt.Errorf("wireguard: device file %s: ipv6 %s does not match ipv4 %s (want %s)", path, f.IPv6, f.IPv4, v6)
	}
	d := Device{Name: f.Name, PrivateKey: k, IPv4: f.IPv4, IPv6: f.IPv6}
	return d, CheckName(d.Name)
}

// Device returns the named device, creating its key pair and the lowest
// free tunnel addresses on first use of the name (created is then true).
func (s *Store) Device(name string) (d Device, created bool, err error) {
	if err := CheckName(name); err != nil {
		return Device{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockFile(filepath.Join(s.dir, lockName))
	if err != nil {
		return Device{}, false, err
	}
	defer unlock()
	devs, err := s.Devices()
	if err != nil {
		return Device{}, false, err
	}
	used := map[int]bool{}
	for _, d := range devs {
		if d.Name == name {
			return d, false, nil
		}
		n, _ := hostNumber(d.IPv4) // readDevice checked it
		used[n] = true
	}
	n := firstDeviceHost
	for used[n] {
		n++
	}
	if n > lastDeviceHost {
		return Device{}, false, fmt.Errorf("wireguard: no tunnel address left for %q: %d devices already; delete one in %s", name, len(devs), filepath.Dir(s.DeviceFile(name)))
	}
	if d, err = NewDevice(name, n); err != nil {
		return Device{}, false, err
	}
	data, err := json.MarshalIndent(deviceFile{Name: d.Name, PrivateKey: d.PrivateKey.String(), IPv4: d.IPv4, IPv6: d.IPv6}, "", "  ")
	if err != nil {
		return Device{}, false, fmt.Errorf("wireguard: encoding device %q: %w", name, err)
	}
	if err := writeNew(s.DeviceFile(name), append(data, '\n')); err != nil {
		return Device{}, false, err
	}
	return d, true, nil
}
