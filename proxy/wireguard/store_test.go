package wireguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestStoreKeepsKeys: the first OpenStore creates the folders and the
// server key with private modes; a second one (a restart) reads the same
// key, and a device keeps its key and addresses.
func TestStoreKeepsKeys(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	st, err := OpenStore(caDir)
	if err != nil {
		t.Fatal(err)
	}
	d, created, err := st.Device(DefaultDevice)
	if err != nil || !created {
		t.Fatalf("first Device: created=%v err=%v", created, err)
	}
	v4, v6 := hostAddrs(firstDeviceHost)
	if d.IPv4 != v4 || d.IPv6 != v6 || d.Name != "phone" {
		t.Errorf("first device %s %s %s, want phone %s %s", d.Name, d.IPv4, d.IPv6, v4, v6)
	}
	for path, want := range map[string]os.FileMode{
		caDir:                                 0o700,
		st.Dir():                              0o700,
		filepath.Join(st.Dir(), "devices"):    0o700,
		filepath.Join(st.Dir(), "server.key"): 0o600,
		st.DeviceFile("phone"):                0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %04o", path, fi.Mode().Perm(), err, want)
		}
	}

	again, err := OpenStore(caDir)
	if err != nil {
		t.Fatal(err)
	}
	d2, created, err := again.Device("phone")
	if err != nil || created || again.ServerKey() != st.ServerKey() || d2 != d {
		t.Errorf("after a restart: created=%v err=%v same server key=%v same device=%v", created, err, again.ServerKey() == st.ServerKey(), d2 == d)
	}
	tablet, created, err := again.Device("tablet")
	if err != nil || !created || tablet.IPv4 == d.IPv4 || tablet.PrivateKey == d.PrivateKey {
		t.Errorf("second device %+v created=%v err=%v: want new key and address", tablet, created, err)
	}
	devs, err := st.Devices()
	if err != nil || len(devs) != 2 || devs[0].Name != "phone" || devs[1].Name != "tablet" {
		t.Errorf("Devices %v %v, want phone and tablet", devs, err)
	}
	// The file is what `wg pubkey` reads.
	b, _ := os.ReadFile(filepath.Join(st.Dir(), "server.key"))
	if k, err := ParseKey(string(b)); err != nil || k != st.ServerKey() {
		t.Errorf("server.key holds %q (%v)", b, err)
	}
}

// TestStoreRefusals: a key file others can read, a folder others can
// write, a bad name and a key folder inside the source tree are refused.
func TestStoreRefusals(t *testing.T) {
	if !checkModes() {
		t.Skip("no Unix permission bits here")
	}
	newStore := func(t *testing.T) (*Store, string) {
		caDir := t.TempDir()
		st, err := OpenStore(caDir)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Device("phone"); err != nil {
			t.Fatal(err)
		}
		return st, caDir
	}
	t.Run("server key group-readable", func(t *testing.T) {
		st, caDir := newStore(t)
		os.Chmod(filepath.Join(st.Dir(), "server.key"), 0o640)
		if _, err := OpenStore(caDir); err == nil || !strings.Contains(err.Error(), "accessible by other users (mode 0640)") {
			t.Errorf("OpenStore: %v, want a refusal naming mode 0640", err)
		}
	})
	t.Run("device key world-readable", func(t *testing.T) {
		st, _ := newStore(t)
		os.Chmod(st.DeviceFile("phone"), 0o604)
		if _, _, err := st.Device("phone"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("Device: %v, want a refusal saying chmod 600", err)
		}
	})
	t.Run("folder writable by others", func(t *testing.T) {
		st, caDir := newStore(t)
		os.Chmod(st.Dir(), 0o777)
		if _, err := OpenStore(caDir); err == nil || !strings.Contains(err.Error(), "writable by other users") {
			t.Errorf("OpenStore: %v, want a refusal", err)
		}
	})
	t.Run("bad names", func(t *testing.T) {
		st, _ := newStore(t)
		for _, name := range []string{"", "Phone", "-x", "../x", "a b", strings.Repeat("a", 33), "ph.one"} {
			if _, _, err := st.Device(name); err == nil {
				t.Errorf("Device(%q) succeeded", name)
			}
		}
	})
	t.Run("source tree", func(t *testing.T) {
		wd, _ := os.Getwd()
		dir := filepath.Join(wd, "testdata-never-created")
		if _, err := OpenStore(dir); err == nil || !strings.Contains(err.Error(), "source tree") {
			t.Errorf("OpenStore inside the source tree: %v", err)
		}
		if _, err := os.Stat(dir); err == nil {
			os.RemoveAll(dir)
			t.Error("the directory was created")
		}
	})
	t.Run("mismatched file name", func(t *testing.T) {
		st, _ := newStore(t)
		b, _ := os.ReadFile(st.DeviceFile("phone"))
		os.WriteFile(st.DeviceFile("tablet"), b, 0o600)
		if _, err := st.Devices(); err == nil || !strings.Contains(err.Error(), `names "phone"; want "tablet"`) {
			t.Errorf("Devices: %v, want the name mismatch reported", err)
		}
	})
}

// TestStoreConcurrentCreation: two stores on one directory (as the proxy
// and `tlsresume wireguard config` in two processes: flock(2) locks are
// per open file, so two stores in one process contend the same way)
// create sixty devices at once, each name through both; every device gets its own address.
func TestStoreConcurrentCreation(t *testing.T) {
	caDir := t.TempDir()
	var stores [2]*Store
	for i := range stores {
		st, err := OpenStore(caDir)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = st
	}
	if stores[0].ServerKey() != stores[1].ServerKey() {
		t.Fatal("two stores on one directory have different server keys")
	}
	var wg sync.WaitGroup
	const n = 60
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each name is asked for at once through both stores.
			if _, _, err := stores[i%2].Device(fmt.Sprintf("dev-%d", i/2)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	devs, err := stores[0].Devices()
	if err != nil || len(devs) != n {
		t.Fatalf("%d devices (%v), want %d with distinct addresses", len(devs), err, n)
	}
}
