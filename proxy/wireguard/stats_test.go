package wireguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// ipcGetSample is an IpcGet answer in the form the library writes it
// (device.IpcGetOperation): a server with a device that has connected and
// one that never has, with made-up keys.
const ipcGetSample = `private_key=a8dac1d8a70a751f0f699fb14ba1cff7b79cf4fbd8f09f44c6e4a90d0369604d
listen_port=51820
public_key=f3f0a62b8a0a1a3b2bda7fd2c8b1c6d2a4e0a3d7bbcc1b9e0f0e44e7d9e4d0a1
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
protocol_version=1
endpoint=127.0.0.1:40000
last_handshake_time_sec=1760000000
last_handshake_time_nsec=5000
tx_bytes=9356
rx_bytes=8872
persistent_keepalive_interval=0
allowed_ip=10.73.0.2/32
allowed_ip=fd74:6c73:7265::2/128
public_key=0000000000000000000000000000000000000000000000000000000000000001
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
protocol_version=1
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=0
allowed_ip=10.73.0.3/32
`

// TestParsePeerStats: each peer's endpoint, handshake time and counters.
func TestParsePeerStats(t *testing.T) {
	peers, err := parsePeerStats(ipcGetSample)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := parseHexKey("f3f0a62b8a0a1a3b2bda7fd2c8b1c6d2a4e0a3d7bbcc1b9e0f0e44e7d9e4d0a1")
	k2, _ := parseHexKey("0000000000000000000000000000000000000000000000000000000000000001")
	want := map[Key]peerStats{
		k1: {endpoint: "127.0.0.1:40000", handshake: time.Unix(1760000000, 5000), rx: 8872, tx: 9356},
		k2: {},
	}
	if len(peers) != 2 || peers[k1] != want[k1] || peers[k2] != want[k2] {
		t.Errorf("got %+v, want %+v", peers, want)
	}
	for _, bad := range []string{"public_key=zz\n", "public_key=" + k1.hex() + "\nrx_bytes=-1\n"} {
		if _, err := parsePeerStats(bad); err == nil {
			t.Errorf("parsePeerStats(%q) succeeded", bad)
		}
	}
}

// FuzzParsePeerStats: any text yields peers or an error, never a panic,
// and a peer's counters survive being written back in the same form.
func FuzzParsePeerStats(f *testing.F) {
	f.Add(ipcGetSample)
	f.Add("public_key=" + strings.Repeat("0", 64) + "\nlast_handshake_time_nsec=1\n")
	f.Fuzz(func(t *testing.T, text string) {
		peers, err := parsePeerStats(text)
		if err != nil {
			return
		}
		for k, p := range peers {
			again := fmt.Sprintf("public_key=%s\nendpoint=%s\nrx_bytes=%d\ntx_bytes=%d\n", k.hex(), p.endpoint, p.rx, p.tx)
			if strings.ContainsAny(p.endpoint, "\n") {
				continue
			}
			back, err := parsePeerStats(again)
			if err != nil || back[k].rx != p.rx || back[k].tx != p.tx || back[k].endpoint != p.endpoint {
				t.Errorf("%+v written back read as %+v (%v)", p, back[k], err)
			}
		}
	})
}

// TestQRDecodes: zbarimg, a real QR decoder, reads the PNG back as the
// exact configuration text.
func TestQRDecodes(t *testing.T) {
	zbar := tlstest.Need(t, "zbarimg")
	server, _ := NewPrivateKey()
	d, _ := NewDevice("phone", 2)
	text, err := WGQuick(d, server, "192.168.1.20:51820")
	if err != nil {
		t.Fatal(err)
	}
	png, err := QRPNG(text)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := tlstest.Run(t.Context(), "", zbar, "--raw", "-q", "-Sbinary", path)
	if err != nil {
		t.Fatal(err)
	}
	if out != text {
		t.Errorf("zbarimg read:\n%s\nwant:\n%s", out, text)
	}
}
