package inspect

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// deviceRecords: two connections from WireGuard devices, one without SNI
// whose device looked the name up, and one from a CONNECT client.
func deviceRecords() []*ConnRecord {
	return []*ConnRecord{
		{Record: Record{Source: SourceWireGuard, ClientAddr: "10.73.0.2:40001", Device: "phone", SNI: "api.example.com",
			DNSName: "api.example.com", ClientHello: &ClientHelloRecord{Attempt: AttemptNone, JA4: "t13d"}},
			ID: "c1", Target: "192.0.2.7:443", Verdict: Verdict{Code: CodeFirstContact}},
		{Record: Record{Source: SourceWireGuard, ClientAddr: "[fd74:6c73:7265::3]:40002", Device: "phone-2",
			DNSName: "nosni.example", ClientHello: &ClientHelloRecord{Attempt: AttemptNone, JA4: "t13d"}},
			ID: "c2", Target: "[2001:db8::7]:443", Verdict: Verdict{Code: CodeFirstContact}},
		{Record: Record{Source: SourceConnect, ClientAddr: "127.0.0.1:40003", SNI: "api.example.com",
			ClientHello: &ClientHelloRecord{Attempt: AttemptNone, JA4: "t13d"}},
			ID: "c3", Target: "api.example.com:443", Verdict: Verdict{Code: CodeFirstContact}},
	}
}

// TestDeviceSelector: device= selects a device's records by its exact
// name (phone is not phone-2), ignoring case; source=wireguard selects
// both devices'; host= finds a hello without SNI by the name its device
// looked up.
func TestDeviceSelector(t *testing.T) {
	recs := deviceRecords()
	for _, tt := range []struct{ sel, want string }{
		{"device=phone", "c1"},
		{"device=PHONE-2", "c2"},
		{"device=ph", ""},
		{"source=wireguard", "c1,c2"},
		{"host=nosni", "c2"},
		{"device=phone,host=api", "c1"},
	} {
		sel, err := ParseSelector(tt.sel)
		if err != nil {
			t.Fatalf("%s: %v", tt.sel, err)
		}
		var ids []string
		for _, r := range Select(recs, sel) {
			ids = append(ids, r.ID)
		}
		if got := strings.Join(ids, ","); got != tt.want {
			t.Errorf("%s selected %q, want %q", tt.sel, got, tt.want)
		}
	}
	if _, err := ParseSelector("gadget=phone"); err == nil || !strings.Contains(err.Error(), "device") {
		t.Errorf("an unknown key's error %v does not list device", err)
	}
}

// TestDeviceReport: a device's rows name it beside its address, the
// client column widening to fit; the host of a hello without SNI is the
// name its device looked up.
func TestDeviceReport(t *testing.T) {
	sums := Summarize(deviceRecords())
	if len(sums) != 3 || sums[0].Device != "phone" || sums[1].Device != "phone-2" || sums[2].Device != "" {
		t.Fatalf("summaries %+v: want phone, phone-2 and a client without a device", sums)
	}
	if sums[1].Host != "nosni.example" {
		t.Errorf("host of a hello without SNI: %q, want the name the device looked up", sums[1].Host)
	}
	var out bytes.Buffer
	if err := WriteSummaries(&out, sums); err != nil {
		t.Fatal(err)
	}
	var lines []string // the header and each row's first line (WHY NOT wraps)
	for _, l := range strings.Split(out.String(), "\n") {
		if l != "" && !strings.HasPrefix(l, " ") {
			lines = append(lines, l)
		}
	}
	for i, want := range []string{"phone (10.73.0.2) ", "phone-2 (fd74:6c73:7265::3) ", "127.0.0.1 "} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("row %d starts %q, want %q", i+1, lines[i+1], want)
		}
	}
	col := strings.Index(lines[0], "PROGRAM")
	for _, l := range lines[1:4] {
		if strings.Index(l, "t13d") != col {
			t.Errorf("row %q: the program column does not line up with the header's at %d", l, col)
		}
	}
}

// TestDeviceRecordFields: device and dns_name are written when set, left
// out when empty, read back, and capped like the other names.
func TestDeviceRecordFields(t *testing.T) {
	b, _ := json.Marshal(deviceRecords()[0])
	if !bytes.Contains(b, []byte(`"device":"phone"`)) || !bytes.Contains(b, []byte(`"dns_name":"api.example.com"`)) || !bytes.Contains(b, []byte(`"source":"wireguard"`)) {
		t.Errorf("record JSON lacks device, dns_name or source: %s", b)
	}
	var back ConnRecord
	if err := json.Unmarshal(b, &back); err != nil || back.Device != "phone" || back.DNSName != "api.example.com" {
		t.Errorf("read back device %q dns_name %q (%v)", back.Device, back.DNSName, err)
	}
	if b, _ := json.Marshal(deviceRecords()[2]); bytes.Contains(b, []byte("device")) || bytes.Contains(b, []byte("dns_name")) {
		t.Errorf("a record from no device has device or dns_name: %s", b)
	}
	long := &ConnRecord{Record: Record{Device: strings.Repeat("d", 1000), DNSName: strings.Repeat("n", 1000)}}
	got := long.Capped()
	if len(got.Device) > MaxNameLen || len(got.DNSName) > MaxNameLen || !strings.HasSuffix(got.DNSName, "…[cut: 1000 bytes]") {
		t.Errorf("capped device %d bytes, dns_name %d bytes %q", len(got.Device), len(got.DNSName), got.DNSName[len(got.DNSName)-20:])
	}
}
