package inspect_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect"
	"github.com/tlsresume/tlsresume/inspect/tlstest"
)

// helloWant is what one ClientHello of a case must be recorded as.
type helloWant struct {
	attempt inspect.Attempt
	hrr     bool            // answered by a HelloRetryRequest
	resumed bool            // server_hello.resumed
	by      inspect.Attempt // server_hello.resumed_by, "" for null
}

var (
	fresh    = helloWant{attempt: inspect.AttemptNone}
	byTicket = helloWant{attempt: inspect.AttemptTicket, resumed: true, by: inspect.AttemptTicket}
	bySID    = helloWant{attempt: inspect.AttemptSessionID, resumed: true, by: inspect.AttemptSessionID}
	byPSK    = helloWant{attempt: inspect.AttemptPSK, resumed: true, by: inspect.AttemptPSK}
)

func retried(attempt inspect.Attempt) helloWant { return helloWant{attempt: attempt, hrr: true} }

// realCase is one client against one server at one TLS version: a first
// connection, then one that offers what the first left behind.
type realCase struct {
	name       string
	client     string // binary the client needs; "" for the Go client
	server     string // "go" (crypto/tls) or "openssl" (s_server)
	serverArgs []string
	version    uint16
	run        func(ctx context.Context, bin string, tg tlstest.Target) ([]tlstest.Report, error)
	// want lists each connection's hellos in order. nil: a browser opens as
	// many connections as it likes; the server's verdicts judge them.
	want [][]helloWant
}

func sClient(extra ...string) func(context.Context, string, tlstest.Target) ([]tlstest.Report, error) {
	return func(ctx context.Context, bin string, tg tlstest.Target) ([]tlstest.Report, error) {
		return tlstest.OpenSSLClient(ctx, bin, tg, extra...)
	}
}

func goClient(ctx context.Context, _ string, tg tlstest.Target) ([]tlstest.Report, error) {
	return tlstest.GoClient(ctx, tg)
}

func chromium(ctx context.Context, bin string, tg tlstest.Target) ([]tlstest.Report, error) {
	return nil, tlstest.Chromium(ctx, bin, tg)
}

// www prefixes s_server's -www: answer each HTTP request with a status
// page naming the connection's verdict, then close.
func www(args ...string) []string { return append([]string{"-www"}, args...) }

const (
	v12 = tls.VersionTLS12
	v13 = tls.VersionTLS13
)

var realCases = []realCase{
	{name: "openssl/openssl-server/tls1.2-ticket", client: "openssl", server: "openssl",
		serverArgs: www("-tls1_2"), version: v12, run: sClient(),
		want: [][]helloWant{{fresh}, {byTicket}}},
	{name: "openssl/openssl-server/tls1.2-session-id", client: "openssl", server: "openssl",
		serverArgs: www("-tls1_2", "-no_ticket"), version: v12, run: sClient("-no_ticket"),
		want: [][]helloWant{{fresh}, {bySID}}},
	{name: "openssl/openssl-server/tls1.3", client: "openssl", server: "openssl",
		serverArgs: www("-tls1_3"), version: v13, run: sClient(),
		want: [][]helloWant{{fresh}, {byPSK}}},
	// The client's only key share is P-256 and the server takes only X25519:
	// a HelloRetryRequest in both connections, the second one after a PSK offer.
	{name: "openssl/openssl-server/tls1.3-hrr", client: "openssl", server: "openssl",
		serverArgs: www("-tls1_3", "-groups", "X25519"), version: v13, run: sClient("-groups", "P-256:X25519"),
		want: [][]helloWant{{retried(inspect.AttemptNone), fresh}, {retried(inspect.AttemptPSK), byPSK}}},
	// s_server accepts early data only without -www.
	{name: "openssl/openssl-server/tls1.3-early-data", client: "openssl", server: "openssl",
		serverArgs: []string{"-tls1_3", "-early_data", "-quiet"}, version: v13, run: tlstest.OpenSSLEarlyData,
		want: [][]helloWant{{fresh}, {byPSK}}},
	{name: "openssl/go-server/tls1.2", client: "openssl", server: "go", version: v12, run: sClient(),
		want: [][]helloWant{{fresh}, {byTicket}}},
	{name: "openssl/go-server/tls1.3", client: "openssl", server: "go", version: v13, run: sClient(),
		want: [][]helloWant{{fresh}, {byPSK}}},
	{name: "gnutls/go-server/tls1.2", client: "gnutls-cli", server: "go", version: v12, run: tlstest.GnuTLSClient,
		want: [][]helloWant{{fresh}, {byTicket}}},
	{name: "gnutls/openssl-server/tls1.3", client: "gnutls-cli", server: "openssl",
		serverArgs: www("-tls1_3"), version: v13, run: tlstest.GnuTLSClient,
		want: [][]helloWant{{fresh}, {byPSK}}},
	// curl sets SSL_OP_NO_TICKET (lib/vtls/openssl.c): in TLS 1.2 it resumes
	// by session ID, which crypto/tls servers do not support.
	{name: "curl/openssl-server/tls1.2", client: "curl", server: "openssl",
		serverArgs: www("-tls1_2"), version: v12, run: tlstest.Curl,
		want: [][]helloWant{{fresh}, {bySID}}},
	{name: "curl/openssl-server/tls1.3", client: "curl", server: "openssl",
		serverArgs: www("-tls1_3"), version: v13, run: tlstest.Curl,
		want: [][]helloWant{{fresh}, {byPSK}}},
	{name: "python/go-server/tls1.2", client: "python3", server: "go", version: v12, run: tlstest.Python,
		want: [][]helloWant{{fresh}, {byTicket}}},
	{name: "python/go-server/tls1.3", client: "python3", server: "go", version: v13, run: tlstest.Python,
		want: [][]helloWant{{fresh}, {byPSK}}},
	{name: "go/openssl-server/tls1.2", server: "openssl", serverArgs: www("-tls1_2"), version: v12,
		run: goClient, want: [][]helloWant{{fresh}, {byTicket}}},
	{name: "go/openssl-server/tls1.3", server: "openssl", serverArgs: www("-tls1_3"), version: v13,
		run: goClient, want: [][]helloWant{{fresh}, {byPSK}}},
	{name: "chromium/go-server/tls1.2", client: "chromium", server: "go", version: v12, run: chromium},
	{name: "chromium/go-server/tls1.3", client: "chromium", server: "go", version: v13, run: chromium},
}

// TestInspectRealClients runs real TLS clients against real servers on 127.0.0.1,
// captures the traffic, and checks every record inspect.ReadCapture makes of
// it against tshark's dissection of the same capture and against what the
// client (or server) itself says about resumption.
func TestInspectRealClients(t *testing.T) {
	for _, c := range realCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runRealCase(t, c)
		})
	}
}

func runRealCase(t *testing.T, c realCase) {
	var bin, openssl string
	if c.client != "" {
		bin = tlstest.Need(t, c.client)
	}
	if c.server == "openssl" {
		openssl = tlstest.Need(t, "openssl")
	}
	tshark := tlstest.Need(t, "tshark")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	dir := t.TempDir()
	tg := tlstest.Target{Version: c.version, Dir: dir, Cert: tlstest.WriteCert(t, dir), Logf: t.Logf}
	var goSrv *tlstest.GoServer
	if c.server == "go" {
		goSrv = tlstest.StartGoServer(t, tg.Cert.TLS, c.version)
		tg.Port = goSrv.Port
	} else {
		tg.Port = tlstest.StartOpenSSLServer(ctx, t, openssl, tg.Cert, c.serverArgs...).Port
	}

	capPath := filepath.Join(dir, "capture.pcap")
	t.Cleanup(func() { keepCapture(t, capPath) })
	capture := tlstest.StartCapture(ctx, t, tg.Port, capPath)
	reports, err := c.run(ctx, bin, tg)
	if stopErr := capture.Stop(ctx); stopErr != nil {
		t.Fatal(stopErr)
	}
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	msgs, err := tlstest.Dissect(ctx, tshark, capPath, tg.Port)
	if err != nil {
		t.Fatal(err)
	}
	conns := tlstest.Connections(msgs, tg.Port)
	recs, nrecs := readRecords(t, capPath)
	t.Logf("%d connections, %d records, capture %s", len(conns), nrecs, capPath)

	checkAgainstTshark(t, conns, recs, nrecs)
	var serverReports []tlstest.Report
	if goSrv != nil {
		serverReports = reportsByPort(goSrv.Resumed())
	}
	if c.want == nil {
		checkBrowser(t, c, conns, recs, serverReports)
		return
	}
	checkClientReports(t, "client", conns, recs, reports, false)
	if serverReports != nil {
		checkClientReports(t, "server", conns, recs, serverReports, false)
	}
	checkWant(t, c, conns, recs)
}

// keepEnv names a directory where the captures of failed cases are kept,
// as evidence for a bug report.
const keepEnv = "TLSRESUME_KEEP_CAPTURES"

func keepCapture(t *testing.T, path string) {
	dst := os.Getenv(keepEnv)
	if !t.Failed() || dst == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err == nil {
		name := strings.ReplaceAll(t.Name(), "/", "_") + ".pcap"
		dst = filepath.Join(dst, name)
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		t.Logf("keeping the capture: %v", err)
		return
	}
	t.Logf("capture kept in %s", dst)
}

// records holds ReadCapture's records by client random. A ClientHello that
// answers a HelloRetryRequest repeats the first one's random (RFC 8446,
// Section 4.1.2), so a random can have several, kept in capture order.
type records map[string][]*inspect.Record

func readRecords(t *testing.T, path string) (records, int) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, n := records{}, 0
	if _, err := inspect.ReadCapture(bufio.NewReader(f), func(r *inspect.Record) error {
		n++
		if r.ClientHello == nil {
			t.Errorf("record without client_hello: frame %d, error %q", r.Frame, r.Error)
			return nil
		}
		recs[r.ClientHello.Random] = append(recs[r.ClientHello.Random], r)
		return nil
	}); err != nil {
		t.Fatalf("ReadCapture: %v", err)
	}
	for _, rs := range recs {
		slices.SortStableFunc(rs, func(a, b *inspect.Record) int { return a.Frame - b.Frame })
	}
	return recs, n
}

// of returns the record of h: the one for its random completed in its frame.
func (rs records) of(h *tlstest.Hello) *inspect.Record {
	for _, r := range rs[h.CH.Random] {
		if r.Frame == h.Frame {
			return r
		}
	}
	return nil
}

func reportsByPort(m map[int]bool) []tlstest.Report {
	var out []tlstest.Report
	for port, resumed := range m {
		out = append(out, tlstest.Report{Port: port, Resumed: resumed})
	}
	return out
}

// helloName names a hello's subtest: connection number, "resumed" when the
// hello offered something to resume with (or resumed), else "first", and
// "-hrr" for a hello answered by a HelloRetryRequest.
func helloName(conn int, h *tlstest.Hello, rec *inspect.Record) string {
	kind := "first"
	if inspect.Attempt(h.Attempt()) != inspect.AttemptNone || (rec != nil && rec.ServerHello != nil && rec.ServerHello.Resumed) {
		kind = "resumed"
	}
	if h.SH != nil && h.SH.HRR() {
		kind += "-hrr"
	}
	return fmt.Sprintf("conn%d-%s", conn+1, kind)
}

// checkWant checks each connection's hellos against the case's table row.
func checkWant(t *testing.T, c realCase, conns [][]*tlstest.Hello, recs records) {
	if len(conns) != len(c.want) {
		t.Errorf("%d connections in the capture, want %d", len(conns), len(c.want))
		return
	}
	for i, hellos := range conns {
		if len(hellos) != len(c.want[i]) {
			t.Errorf("connection %d: %d hellos, want %d", i+1, len(hellos), len(c.want[i]))
			continue
		}
		for j, h := range hellos {
			rec := recs.of(h)
			t.Run(helloName(i, h, rec), func(t *testing.T) {
				w := c.want[i][j]
				checkHelloWant(t, rec, w)
				// What the TLS 1.3 rows claim to test: a random legacy
				// session ID (RFC 8446, Appendix D.4) is not an attempt.
				if c.version == v13 && w.attempt == inspect.AttemptNone && h.CH.SessionIDLen != 32 {
					t.Errorf("session_id_len = %d: this TLS 1.3 first hello does not carry the 32-byte compatibility ID", h.CH.SessionIDLen)
				}
			})
		}
	}
}

func checkHelloWant(t *testing.T, rec *inspect.Record, w helloWant) {
	if rec == nil || rec.ServerHello == nil {
		t.Fatalf("no record with a server_hello")
	}
	sh := rec.ServerHello
	if rec.ClientHello.Attempt != w.attempt {
		t.Errorf("client_hello.attempt = %q, want %q", rec.ClientHello.Attempt, w.attempt)
	}
	if sh.HRR != w.hrr {
		t.Errorf("server_hello.hrr = %v, want %v", sh.HRR, w.hrr)
	}
	if sh.Resumed != w.resumed {
		t.Errorf("server_hello.resumed = %v, want %v", sh.Resumed, w.resumed)
	}
	if got := deref(sh.ResumedBy); got != w.by {
		t.Errorf("server_hello.resumed_by = %q, want %q", got, w.by)
	}
}

// checkClientReports compares each connection's verdict (its last hello's)
// with what who (the client or the server) reported for it. A browser
// abandons spare connections, sometimes right after the ServerHello (seen
// from chromium: FIN instead of Finished), so no server verdict exists for
// them: with browser set, that is logged rather than failed.
func checkClientReports(t *testing.T, who string, conns [][]*tlstest.Hello, recs records, reports []tlstest.Report, browser bool) {
	byPort := len(reports) > 0 && reports[0].Port != 0
	if !byPort && len(reports) != len(conns) {
		t.Errorf("%s reported %d connections, the capture has %d", who, len(reports), len(conns))
		return
	}
	for i, hellos := range conns {
		last := hellos[len(hellos)-1]
		r, ok := tlstest.Report{}, false
		if byPort {
			for _, rr := range reports {
				if rr.Port == last.ClientPort {
					r, ok = rr, true
				}
			}
		} else {
			r, ok = reports[i], true
		}
		switch {
		case !ok && browser:
			t.Logf("connection %d (client port %d): no verdict from the %s; the client abandoned the handshake", i+1, last.ClientPort, who)
			continue
		case !ok:
			t.Errorf("connection %d (client port %d): no verdict from the %s", i+1, last.ClientPort, who)
			continue
		}
		rec := recs.of(last)
		if rec == nil || rec.ServerHello == nil {
			continue // reported by checkAgainstTshark
		}
		if rec.ServerHello.Resumed != r.Resumed {
			t.Errorf("connection %d (client port %d): server_hello.resumed = %v, the %s says %v",
				i+1, last.ClientPort, rec.ServerHello.Resumed, who, r.Resumed)
		}
	}
}

// checkBrowser judges a browser's connections by the server's verdicts:
// each must match, some must be first connections and some resumed.
func checkBrowser(t *testing.T, c realCase, conns [][]*tlstest.Hello, recs records, reports []tlstest.Report) {
	checkClientReports(t, "server", conns, recs, reports, true)
	resumedAttempt := inspect.AttemptTicket
	if c.version == v13 {
		resumedAttempt = inspect.AttemptPSK
	}
	var first, resumed int
	for i, hellos := range conns {
		for _, h := range hellos {
			rec := recs.of(h)
			t.Run(helloName(i, h, rec), func(t *testing.T) {
				switch {
				case rec != nil && rec.ServerHello == nil && h.SH == nil:
					// Browsers abandon spare connections; checkAgainstTshark
					// has checked that the record says so.
					t.Logf("no ServerHello in the capture: the client gave up on this connection")
					return
				case rec == nil || rec.ServerHello == nil:
					t.Fatalf("no record with a server_hello")
				case rec.ServerHello.Resumed:
					resumed++
					checkHelloWant(t, rec, helloWant{attempt: resumedAttempt, resumed: true, by: resumedAttempt})
				case rec.ClientHello.Attempt == inspect.AttemptNone:
					first++
				}
			})
		}
	}
	if first == 0 || resumed == 0 {
		t.Errorf("%d first and %d resumed connections; want some of each", first, resumed)
	}
}

func deref(s *inspect.Attempt) inspect.Attempt {
	if s == nil {
		return ""
	}
	return *s
}

// checkAgainstTshark compares every field of every record with tshark.
func checkAgainstTshark(t *testing.T, conns [][]*tlstest.Hello, recs records, nrecs int) {
	n := 0
	for i, hellos := range conns {
		for _, h := range hellos {
			n++
			rec := recs.of(h)
			if rec == nil {
				t.Errorf("connection %d frame %d: tshark saw a ClientHello (random %s) that has no record completed in that frame",
					i+1, h.Frame, h.CH.Random)
				continue
			}
			t.Logf("connection %d frame %d: %s", i+1, h.Frame, summary(rec))
			for _, d := range diffRecord(rec, h) {
				t.Errorf("connection %d frame %d (client port %d): %s", i+1, h.Frame, h.ClientPort, d)
			}
		}
	}
	if n != nrecs {
		t.Errorf("tshark saw %d ClientHellos, ReadCapture made %d records", n, nrecs)
	}
	if n == 0 {
		t.Errorf("no ClientHello in the capture")
	}
}

// summary is a one-line account of a record for -v output.
func summary(r *inspect.Record) string {
	ch, sh := r.ClientHello, r.ServerHello
	s := fmt.Sprintf("sni=%q sid_len=%d ticket_len=%d psk_ids=%d modes=%v early_data=%v ems=%v ech=%v attempt=%s ja4=%s",
		r.SNI, ch.SessionIDLen, ch.SessionTicket.Len, len(ch.PreSharedKey.Identities), ch.PSKKeyExchangeModes,
		ch.EarlyData, ch.ExtendedMasterSecret, ch.ECH, ch.Attempt, ch.JA4)
	if sh == nil {
		return s + " | no server_hello"
	}
	return s + fmt.Sprintf(" | version=%#04x hrr=%v selected_psk=%v resumed=%v resumed_by=%s",
		sh.Version, sh.HRR, sh.SelectedPSK != nil, sh.Resumed, deref(sh.ResumedBy))
}

// diffRecord lists every field where the record and tshark disagree.
func diffRecord(rec *inspect.Record, h *tlstest.Hello) []string {
	var diffs []string
	eq := func(field string, got, want any) {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			diffs = append(diffs, fmt.Sprintf("%s: inspect %v, tshark %v", field, got, want))
		}
	}
	eqInts := func(field string, got, want []int) {
		if !slices.Equal(got, want) {
			diffs = append(diffs, fmt.Sprintf("%s: inspect %v, tshark %v", field, got, want))
		}
	}
	ch, w := rec.ClientHello, h.CH
	if rec.Error != "" {
		diffs = append(diffs, "error: "+rec.Error)
	}
	eq("sni", rec.SNI, w.SNI)
	eq("client_hello.legacy_version", ch.LegacyVersion, w.LegacyVersion)
	eq("client_hello.random", ch.Random, w.Random)
	eq("client_hello.session_id", ch.SessionID, w.SessionID)
	eq("client_hello.session_id_len", ch.SessionIDLen, w.SessionIDLen)
	eqInts("client_hello.cipher_suites", ch.CipherSuites, w.CipherSuites)
	eqInts("client_hello.extensions", ch.Extensions, w.Extensions)
	if !slices.Equal(ch.ALPN, w.ALPN) {
		diffs = append(diffs, fmt.Sprintf("client_hello.alpn: inspect %q, tshark %q", ch.ALPN, w.ALPN))
	}
	eqInts("client_hello.supported_versions", ch.SupportedVersions, w.SupportedVersions)
	eqInts("client_hello.supported_groups", ch.SupportedGroups, w.SupportedGroups)
	eqInts("client_hello.key_share_groups", ch.KeyShareGroups, w.KeyShareGroups)
	eqInts("client_hello.signature_algorithms", ch.SignatureAlgorithms, w.SignatureAlgorithms)
	eqInts("client_hello.ec_point_formats", ch.ECPointFormats, w.ECPointFormats)
	eq("client_hello.session_ticket.offered", ch.SessionTicket.Offered, w.Has(35))
	eq("client_hello.session_ticket.len", ch.SessionTicket.Len, w.ExtensionLens[35])
	eq("client_hello.pre_shared_key.offered", ch.PreSharedKey.Offered, w.Has(41))
	var idLens []int
	var ages []int64
	for _, id := range ch.PreSharedKey.Identities {
		idLens = append(idLens, id.Len)
		ages = append(ages, int64(id.ObfuscatedTicketAge))
	}
	eqInts("client_hello.pre_shared_key.identities[].len", idLens, w.PSKIdentityLens)
	eq("client_hello.pre_shared_key.identities[].obfuscated_ticket_age", ages, w.PSKTicketAges)
	if w.Has(41) {
		eq("client_hello.pre_shared_key.binders", ch.PreSharedKey.Binders, w.PSKBinders)
	}
	if (ch.PSKKeyExchangeModes == nil) != (w.PSKModes == nil) || !slices.Equal(ch.PSKKeyExchangeModes, w.PSKModes) {
		diffs = append(diffs, fmt.Sprintf("client_hello.psk_key_exchange_modes: inspect %#v, tshark %#v",
			ch.PSKKeyExchangeModes, w.PSKModes))
	}
	eq("client_hello.early_data", ch.EarlyData, w.Has(42))
	eq("client_hello.extended_master_secret", ch.ExtendedMasterSecret, w.Has(23))
	eq("client_hello.ech", ch.ECH, w.Has(0xfe0d))
	eq("client_hello.attempt", ch.Attempt, h.Attempt())
	eq("client_hello.ja3", ch.JA3, w.JA3Full)
	eq("client_hello.ja3_hash", ch.JA3Hash, w.JA3)
	ja4, ja4r := w.JA4()
	eq("client_hello.ja4", ch.JA4, ja4)
	eq("client_hello.ja4_r", ch.JA4R, ja4r)

	sh, ws := rec.ServerHello, h.SH
	switch {
	case sh == nil && ws == nil:
		return diffs
	case sh == nil || ws == nil:
		return append(diffs, fmt.Sprintf("server_hello: inspect %v, tshark %v", sh != nil, ws != nil))
	}
	eq("server_hello.version", sh.Version, ws.Version())
	eq("server_hello.cipher_suite", sh.CipherSuite, ws.CipherSuite)
	eq("server_hello.session_id", sh.SessionID, ws.SessionID)
	eq("server_hello.session_id_len", sh.SessionIDLen, ws.SessionIDLen)
	eqInts("server_hello.extensions", sh.Extensions, ws.Extensions)
	eq("server_hello.hrr", sh.HRR, ws.HRR())
	selected := -1
	if sh.SelectedPSK != nil {
		selected = *sh.SelectedPSK
	}
	eq("server_hello.selected_psk", selected, ws.SelectedPSK)
	eq("server_hello.complete", sh.Complete, true)
	eq("server_hello.resumed", sh.Resumed, h.Resumed())
	eq("server_hello.resumed_by", deref(sh.ResumedBy), h.ResumedBy())
	return diffs
}
