package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestListenAddressForms: --listen takes :port (every address, which
// needs --allow) and localhost:port, and a refusal shows an example.
func TestListenAddressForms(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"--listen", ":8090"}, "e.g. --listen :8090 --allow 192.168.1.0/24; or --listen 127.0.0.1:8090 for this machine only"},
		{[]string{"--listen", ":8090", "--allow", "192.168.1.0/24"}, ""},
		{[]string{"--listen", "localhost:8090"}, ""},
		{[]string{"--listen", "8090"}, "e.g. --listen 127.0.0.1:8080"},
	} {
		var stderr bytes.Buffer
		_, code, ok := parseProxyFlags(tt.args, &stderr)
		if ok != (tt.want == "") || tt.want != "" && (code != 2 || !strings.Contains(stderr.String(), tt.want)) {
			t.Errorf("%v: ok %v, exit %d, %q; want %q", tt.args, ok, code, stderr.String(), tt.want)
		}
	}
}

// TestStartupEveryAddress: a proxy on 0.0.0.0 says 0.0.0.0, not the
// dual-stack [::] Go reports, and names the addresses a phone would use.
func TestStartupEveryAddress(t *testing.T) {
	p := startCLIProxy(t, "--listen", "0.0.0.0:0", "--allow", "127.0.0.0/8")
	text := ""
	for _, l := range p.waitLines(t, "Point a client", 1) {
		text += l
	}
	all := p.text()
	if strings.Contains(all, "[::]") || !strings.Contains(all, "listen=0.0.0.0:") || !strings.Contains(text, "(on this machine: 127.0.0.1:") {
		t.Errorf("start-up:\n%s", all)
	}
	for _, a := range lanAddrs(false) {
		if !strings.Contains(text, a.String()+":") {
			t.Errorf("the start-up line does not name %s: %s", a, text)
		}
	}
}

// TestHelpListsCommands: tlsresume --help lists the commands, not only
// the default command's flags.
func TestHelpListsCommands(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, cmd := range []string{"tlsresume [proxy]", "tlsresume inspect FILE", "tlsresume report FILE", "tlsresume web FILE", "tlsresume ca init"} {
		if !strings.Contains(stdout.String(), cmd) {
			t.Errorf("--help does not list %q:\n%s", cmd, stdout.String())
		}
	}
}

// TestInspectRecordLog: inspect given the proxy's --log says what it is
// and which command reads it.
func TestInspectRecordLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "conns.jsonl")
	os.WriteFile(log, []byte(`{"v":1,"id":"c1","sni":"a.test"}`+"\n"), 0o600)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"inspect", log}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "this is a record log") || !strings.Contains(stderr.String(), "tlsresume report") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// TestWebPortTaken: tlsresume web, whose only job the view is, fails on a
// taken address without the proxy's advice to start without it (--web
// off), and says how to pick another.
func TestWebPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var w webFlags
	w.register(flag.NewFlagSet("web", flag.ContinueOnError))
	w.addr = taken.Addr().String() // as the default is: not given explicitly
	var log bytes.Buffer
	ln, err := w.listen(zerolog.New(&log), false)
	if ln != nil || err == nil || !strings.Contains(err.Error(), "--web ADDR picks another") || strings.Contains(err.Error()+log.String(), "--web off") {
		t.Errorf("listener %v, error %v, log %q", ln, err, log.String())
	}
}
