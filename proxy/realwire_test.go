package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// wireConn is one client connection as tshark dissected it on the
// client→proxy leg: the client's first ClientHello and how tlsresume
// answered it. It is the independent view each record is checked against.
type wireConn struct {
	port    int // the client's port
	hello   *wireHello
	version int  // negotiated: the ServerHello's supported_versions, else its legacy version
	resumed bool // TLS 1.3: the ServerHello selected a PSK; TLS 1.2: no Certificate followed it
	hrr     bool // tlsresume answered with a HelloRetryRequest
	sawSH   bool
	sawCert bool
}

// wireHello is a ClientHello's fields as tshark reports them.
type wireHello struct {
	legacyVersion int
	ciphers       []int
	exts, extLens []int // in wire order, same length
	sni           string
	alpn          []string
	versions      []int
	pskModes      []int // nil when psk_key_exchange_modes is absent
	pskIdentities int
	sigAlgs       []int // of signature_algorithms (13) only
}

func (h *wireHello) has(ext int) bool { return slices.Contains(h.exts, ext) }

func (h *wireHello) extLen(ext int) int {
	if i := slices.Index(h.exts, ext); i >= 0 && i < len(h.extLens) {
		return h.extLens[i]
	}
	return -1
}

// tsharkFields are the columns dissect asks for, in order.
var tsharkFields = []string{
	"tcp.srcport", "tcp.dstport", "tls.handshake.type", "tls.handshake.version",
	"tls.handshake.ciphersuite", "tls.handshake.extension.type", "tls.handshake.extension.len",
	"tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str",
	"tls.handshake.extensions.supported_version",
	"tls.extension.psk_ke_mode", // tshark 4.0's name; newer ones say tls.handshake.extensions_psk_ke_mode
	"tls.handshake.extensions.psk.identity.identity_length",
	"tls.handshake.sig_hash_alg", "tls.handshake.sig_hash_alg_len", "tls.handshake.random",
}

// dissect has tshark read the capture at path and returns each client
// connection to proxyPort by client port. "-d tcp.port==P,http" makes
// tshark follow the CONNECT: after the proxy's 200 it dissects the tunnel
// as TLS.
func dissect(t *testing.T, ctx context.Context, path string, proxyPort int) map[int]*wireConn {
	t.Helper()
	tshark := needBinary(t, "tshark")
	args := []string{"-r", path, "-n", "-d", fmt.Sprintf("tcp.port==%d,http", proxyPort),
		"-Y", "tls.handshake.type==1 || tls.handshake.type==2 || tls.handshake.type==11",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	out, _, err := runTool(ctx, nil, "", tshark, args...)
	if err != nil {
		t.Fatal(err)
	}
	conns := map[int]*wireConn{}
	get := func(port int) *wireConn {
		if conns[port] == nil {
			conns[port] = &wireConn{port: port}
		}
		return conns[port]
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != len(tsharkFields) {
			t.Fatalf("tshark printed %d columns, want %d: %q", len(f), len(tsharkFields), line)
		}
		src, dst := atoi(f[0]), atoi(f[1])
		types := ints(f[2])
		switch {
		case dst == proxyPort && slices.Contains(types, 1):
			c := get(src)
			if c.hello == nil { // the first hello; a second one follows a HelloRetryRequest
				c.hello = parseHello(t, f)
			}
		case src == proxyPort:
			c := get(dst)
			if slices.Contains(types, 2) {
				c.sawSH = true
				if v := ints(f[9]); len(v) > 0 {
					c.version = v[0]
				} else if v := ints(f[3]); len(v) > 0 {
					c.version = v[0]
				}
				if slices.Contains(ints(f[5]), 41) { // pre_shared_key: the server accepted a PSK
					c.resumed = true
				}
				if strings.ReplaceAll(f[14], ":", "") == hrrRandom {
					c.hrr = true
				}
			}
			c.sawCert = c.sawCert || slices.Contains(types, 11)
		}
	}
	for _, c := range conns {
		if c.version == 0x0303 || c.version == 0x0302 || c.version == 0x0301 {
			// A TLS 1.2 server sends its Certificate only in a full
			// handshake (RFC 5246, Section 7.3): none means it resumed.
			c.resumed = c.sawSH && !c.sawCert
		}
	}
	return conns
}

func parseHello(t *testing.T, f []string) *wireHello {
	h := &wireHello{
		legacyVersion: first(ints(f[3])),
		ciphers:       ints(f[4]),
		exts:          ints(f[5]),
		extLens:       ints(f[6]),
		sni:           f[7],
		versions:      ints(f[9]),
		pskIdentities: len(ints(f[11])),
	}
	if f[8] != "" {
		h.alpn = strings.Split(f[8], ",")
	}
	if h.has(45) {
		h.pskModes = ints(f[10])
	}
	// sig_hash_alg holds the lists of signature_algorithms (13) and
	// signature_algorithms_cert (50) one after the other, in wire order;
	// sig_hash_alg_len holds their byte lengths.
	algs, lens := ints(f[12]), ints(f[13])
	at := 0
	for i, ext := range h.exts {
		if ext != 13 && ext != 50 {
			continue
		}
		if len(lens) == 0 {
			t.Fatalf("tshark reported extension %d at %d without a sig_hash_alg_len", ext, i)
		}
		n := lens[0] / 2
		lens = lens[1:]
		if at+n > len(algs) {
			t.Fatalf("tshark reported %d signature algorithms, lengths say more", len(algs))
		}
		if ext == 13 {
			h.sigAlgs = algs[at : at+n]
		}
		at += n
	}
	return h
}

// hrrRandom is the random of a HelloRetryRequest: SHA-256 of
// "HelloRetryRequest" (RFC 8446, Section 4.1.3).
var hrrRandom = func() string {
	s := sha256.Sum256([]byte("HelloRetryRequest"))
	return hex.EncodeToString(s[:])
}()

// ja4 computes JA4 from tshark's fields, following FoxIO's JA4
// specification (technical_details/JA4.md): a second implementation fed by
// a different dissector. tshark 4.0 has no JA4 field of its own.
func (h *wireHello) ja4() string {
	var ciphers, exts, sigs []int
	for _, c := range h.ciphers {
		if !isGREASE(c) {
			ciphers = append(ciphers, c)
		}
	}
	n := 0
	for _, e := range h.exts {
		if isGREASE(e) {
			continue
		}
		n++
		if e != 0 && e != 16 { // server_name and ALPN are counted, not listed
			exts = append(exts, e)
		}
	}
	for _, s := range h.sigAlgs {
		if !isGREASE(s) {
			sigs = append(sigs, s)
		}
	}
	slices.Sort(ciphers)
	slices.Sort(exts)
	version := h.legacyVersion
	if h.has(43) {
		version = 0
		for _, v := range h.versions {
			if !isGREASE(v) && v > version {
				version = v
			}
		}
	}
	vcode := map[int]string{0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}[version]
	if vcode == "" {
		vcode = "00"
	}
	sni := "i"
	if h.has(0) {
		sni = "d"
	}
	alpn := "00"
	if len(h.alpn) > 0 && h.alpn[0] != "" {
		p := h.alpn[0]
		alpn = p[:1] + p[len(p)-1:]
		if !alnum(p[0]) || !alnum(p[len(p)-1]) {
			x := hex.EncodeToString([]byte(p))
			alpn = x[:1] + x[len(x)-1:]
		}
	}
	extList := hexList(exts)
	if len(sigs) > 0 {
		extList += "_" + hexList(sigs)
	}
	return fmt.Sprintf("t%s%s%02d%02d%s_%s_%s", vcode, sni, min(len(ciphers), 99), min(n, 99), alpn,
		hash12(hexList(ciphers)), hash12(extList))
}

func alnum(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

func hexList(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprintf("%04x", v)
	}
	return strings.Join(s, ",")
}

func hash12(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

// isGREASE: the reserved values 0x?a?a (RFC 8701, Section 2).
func isGREASE(v int) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// ints parses tshark's comma-joined decimal or 0x-hex values.
func ints(s string) []int {
	if s == "" {
		return nil
	}
	var out []int
	for _, v := range strings.Split(s, ",") {
		out = append(out, atoi(v))
	}
	return out
}

func atoi(s string) int {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil {
		return -1
	}
	return int(v)
}

func first(v []int) int {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// wireBytes are the TCP payload bytes of one client connection, less the
// CONNECT request and the proxy's reply: what the record counts.
type wireBytes struct {
	up, down int
	// unread is the client's closing alert (close_notify) when it is the
	// last thing the client sent: it races the proxy's own close, and the
	// proxy counts only what it read ("as read from the client", record.go).
	unread int
}

// tunnelBytes has tshark list each connection's TCP segments, rebuilds both
// byte streams by sequence number (retransmissions happen even on
// loopback: gVisor's netstack), and takes off the CONNECT request (up to
// its blank line) and the proxy's reply.
func tunnelBytes(t *testing.T, ctx context.Context, path string, proxyPort int) map[int]wireBytes {
	t.Helper()
	tshark := needBinary(t, "tshark")
	out, _, err := runTool(ctx, nil, "", tshark, "-r", path, "-n", "-T", "fields",
		"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.payload")
	if err != nil {
		t.Fatal(err)
	}
	type conn struct {
		up, down []byte
		last     []byte // the client's segment that ends its stream
	}
	// put writes b at relative sequence number seq (1 is the first byte).
	put := func(stream []byte, seq int, b []byte) []byte {
		end := seq - 1 + len(b)
		if end > len(stream) {
			stream = append(stream, make([]byte, end-len(stream))...)
		}
		copy(stream[seq-1:], b)
		return stream
	}
	conns := map[int]*conn{}
	get := func(port int) *conn {
		if conns[port] == nil {
			conns[port] = &conn{}
		}
		return conns[port]
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("tshark printed %q", line)
		}
		b, err := hex.DecodeString(strings.ReplaceAll(f[3], ":", ""))
		if err != nil {
			t.Fatalf("tshark payload %q: %v", tail(f[3], 40), err)
		}
		seq := atoi(f[2])
		switch src, dst := atoi(f[0]), atoi(f[1]); {
		case dst == proxyPort && len(b) > 0:
			c := get(src)
			if seq-1+len(b) >= len(c.up) {
				c.last = b
			}
			c.up = put(c.up, seq, b)
		case src == proxyPort:
			c := get(dst)
			if len(b) > 0 {
				c.down = put(c.down, seq, b)
			}
		}
	}
	res := map[int]wireBytes{}
	for port, c := range conns {
		req := strings.Index(string(c.up), "\r\n\r\n") + 4
		reply := strings.Index(string(c.down), "\r\n\r\n") + 4
		if req < 4 || reply < 4 {
			t.Fatalf("client port %d: no CONNECT request or reply in the capture", port)
		}
		w := wireBytes{up: len(c.up) - req, down: len(c.down) - reply}
		if isAlertRecord(c.last) {
			w.unread = len(c.last)
		}
		res[port] = w
	}
	return res
}

// isAlertRecord reports whether b is exactly one TLS record holding an
// alert: content type alert (21), or in TLS 1.3 an encrypted record (23)
// of 19 bytes, an alert's 2 bytes, its inner type and a 16-byte AEAD tag
// (RFC 8446, Section 5.2).
func isAlertRecord(b []byte) bool {
	if len(b) < 5 || int(b[3])<<8|int(b[4]) != len(b)-5 {
		return false
	}
	return b[0] == 21 || b[0] == 23 && len(b)-5 == 19
}
