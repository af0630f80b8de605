package inspect

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsresume/tlsresume/inspect/pcap"
)

// goClientHello records the first flight of a real crypto/tls client.
func goClientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, cfg).Handshake()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := ReadClientHello(b)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// corpusClientStreams returns the first bytes each client sent in the
// corpus captures that begin with a TLS handshake record: real hellos from
// browsers, curl, Apple's stack and more.
func corpusClientStreams(t testing.TB) [][]byte {
	dir := filepath.Join("..", "..", "shared", "corpora", "ja4corpus")
	paths, _ := filepath.Glob(filepath.Join(dir, "captures", "*.pcap*"))
	apple, _ := filepath.Glob(filepath.Join(dir, "apple", "captures", "*.pcap"))
	var out [][]byte
	for _, p := range append(paths, apple...) {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		streams := map[string][]byte{}
		pcap.Read(f, pcap.Options{MaxBytes: 4096}, func(s pcap.Segment) error {
			k := s.Src.String() + s.Dst.String()
			streams[k] = append(streams[k], s.Data...)
			return nil
		})
		f.Close()
		for _, b := range streams {
			if len(b) > 5 && b[0] == recordHandshake && b[5] == typeClientHello {
				out = append(out, b)
			}
		}
	}
	return out
}

func seedHellos(f *testing.F) [][]byte {
	seeds := [][]byte{
		records(recordHandshake, opensslResume.marshal(), 1<<14),
		records(recordHandshake, urlSession.marshal(), 100),
		records(recordHandshake, gnutls.marshal(), 1<<14),
		records(recordHandshake, chromium.marshal(), 1<<14),
		goClientHello(f, &tls.Config{ServerName: "a.test", NextProtos: []string{"h2"}}),
		goClientHello(f, &tls.Config{ServerName: "a.test", MaxVersion: tls.VersionTLS12}),
	}
	return append(seeds, corpusClientStreams(f)...)
}

func FuzzReadClientHello(f *testing.F) {
	for _, s := range seedHellos(f) {
		f.Add(s)
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, raw, err := ReadClientHello(bytes.NewReader(data))
		if !bytes.HasPrefix(data, raw) {
			t.Fatalf("raw is not what was read")
		}
		if err != nil {
			var re *ReadError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *ReadError", err)
			}
			return
		}
		if msg[0] != typeClientHello || len(msg) > maxHelloLen+4 {
			t.Fatalf("returned a message of type %d, %d bytes", msg[0], len(msg))
		}
	})
}

func FuzzClientHello(f *testing.F) {
	for _, s := range seedHellos(f) {
		if msg, _, err := ReadClientHello(bytes.NewReader(s)); err == nil {
			f.Add(msg)
		}
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var h ClientHello
		if err := h.Unmarshal(msg); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(msg) {
				t.Fatalf("error %v: want a *ParseError with an offset inside the message", err)
			}
			return
		}
		// The extension block re-adds up: every byte is accounted for.
		n := 4 + 2 + 32 + 1 + len(h.SessionID) + 2 + 2*len(h.CipherSuites) + 1 + len(h.CompressionMethods)
		if len(h.Extensions) > 0 || len(msg) > n {
			n += 2
		}
		for _, e := range h.Extensions {
			n += 4 + len(e.Data)
		}
		if n != len(msg) {
			t.Fatalf("parsed fields cover %d bytes of %d", n, len(msg))
		}
		r := NewClientHelloRecord(&h, AttemptOf(&h, false), Fingerprint(&h, TransportTCP))
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzServerHello(f *testing.F) {
	f.Add(testServerHello(VersionTLS13, make([]byte, 32), false, testExt{ExtPreSharedKey, []byte{0, 0}}))
	f.Add(testServerHello(VersionTLS13, make([]byte, 32), true, testExt{ExtKeyShare, []byte{0, 0x1d}}))
	f.Add(testServerHello(VersionTLS12, sid, false, extEmpty(ExtSessionTicket), extALPN("h2")))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var s ServerHello
		if err := s.Unmarshal(msg); err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		if _, err := json.Marshal(NewServerHelloRecord(&s)); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzConversation feeds arbitrary client and server bytes, in chunks, and
// checks that every hello is recorded exactly once.
func FuzzConversation(f *testing.F) {
	f.Add(records(recordHandshake, opensslResume.marshal(), 1<<14),
		hs(testServerHello(VersionTLS13, nil, false, testExt{ExtPreSharedKey, []byte{0, 0}})), uint8(7))
	f.Add(concat(hs(gnutls.marshal()), ccsRecord, hs(gnutls.marshal())),
		concat(hs(testServerHello(VersionTLS13, nil, true)), ccsRecord, hs(testServerHello(VersionTLS13, nil, false))), uint8(100))
	f.Add(hs(tls12SessionID.marshal()), concat(hs(testServerHello(VersionTLS12, sid, false), newTicket), ccsRecord), uint8(3))
	f.Fuzz(func(t *testing.T, client, server []byte, chunk uint8) {
		n := int(chunk) + 1
		emitted := 0
		conv := &Conversation{History: NewSessionHistory(4), Emit: func(*Record) { emitted++ }}
		for len(client) > 0 || len(server) > 0 {
			k := min(n, len(client))
			conv.Client(client[:k], time.Time{}, 0)
			client = client[k:]
			k = min(n, len(server))
			conv.Server(server[:k], time.Time{}, 0)
			server = server[k:]
		}
		open := len(conv.open)
		conv.Close()
		if len(conv.open) != 0 || emitted < open {
			t.Fatalf("Close left %d open, emitted %d", len(conv.open), emitted)
		}
	})
}
