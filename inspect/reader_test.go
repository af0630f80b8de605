package inspect

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadClientHello(t *testing.T) {
	hello := opensslResume.marshal()
	tests := []struct {
		name   string
		stream []byte
		reader func(io.Reader) io.Reader
	}{
		{"one record", records(recordHandshake, hello, 1<<14), nil},
		{"three records", records(recordHandshake, hello, len(hello)/3+1), nil},
		{"header split across records", records(recordHandshake, hello, 2), nil},
		{"one byte per read", records(recordHandshake, hello, 100), iotest.OneByteReader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(tt.stream)
			if tt.reader != nil {
				r = tt.reader(r)
			}
			msg, raw, err := ReadClientHello(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg, hello) {
				t.Errorf("message differs from the hello sent")
			}
			if !bytes.Equal(raw, tt.stream) {
				t.Errorf("raw holds %d bytes, want all %d for replay", len(raw), len(tt.stream))
			}
		})
	}
}

// The reader stops at the end of the record that completes the hello, so a
// client waiting for the server's answer is never waited for.
func TestReadClientHelloStopsAtHello(t *testing.T) {
	hello := records(recordHandshake, urlSession.marshal(), 1<<14)
	client, server := net.Pipe()
	defer client.Close()
	go func() { client.Write(hello) }() // then waits, as a client does
	server.SetDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := ReadClientHello(server)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(hello) {
		t.Fatalf("read %d bytes, want %d", len(raw), len(hello))
	}
}

func TestReadClientHelloErrors(t *testing.T) {
	big := make([]byte, 4)
	big[0], big[1], big[2], big[3] = typeClientHello, 0x01, 0x00, 0x01 // 65537 bytes
	tests := []struct {
		name   string
		stream []byte
		kind   error
		guess  string
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ErrNotTLS, "http"},
		{"http2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ErrNotTLS, "http2"},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.2p1\r\n"), ErrNotTLS, "ssh"},
		{"garbage", []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05}, ErrNotTLS, ""},
		{"sslv2 hello", []byte{0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15}, ErrSSLv2, ""},
		{"wrong record version", []byte{22, 0x7f, 0x01, 0x00, 0x05}, ErrNotTLS, ""},
		{"alert first", []byte{21, 3, 1, 0, 2, 2, 40}, ErrNotTLS, ""},
		{"alert inside hello", append(records(recordHandshake, opensslResume.marshal()[:50], 50), 21, 3, 3, 0, 2, 2, 40), ErrUnexpectedRecord, ""},
		{"server hello", records(recordHandshake, testServerHello(VersionTLS13, nil, false), 1<<14), ErrNotClientHello, ""},
		{"over 64 KiB", records(recordHandshake, big, 1<<14), ErrTooLarge, ""},
		{"endless records", records(recordHandshake, append(big[:1:1], 0x00, 0xff, 0xf0), 1), ErrTruncated, ""},
		{"record over 2^14+2048", []byte{22, 3, 1, 0x48, 0x01}, ErrMalformed, ""},
		{"empty record", []byte{22, 3, 1, 0, 0}, ErrMalformed, ""},
		{"truncated record", records(recordHandshake, opensslResume.marshal(), 1<<14)[:100], ErrTruncated, ""},
		{"empty stream", nil, ErrTruncated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw, err := ReadClientHello(bytes.NewReader(tt.stream))
			var re *ReadError
			if !errors.As(err, &re) || !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			if re.Guess != tt.guess {
				t.Errorf("guess = %q, want %q", re.Guess, tt.guess)
			}
			if !bytes.Equal(raw, tt.stream[:len(raw)]) {
				t.Errorf("raw is not a prefix of the stream")
			}
		})
	}
}

// Plain HTTP is recognized from the first read, before five bytes arrive.
func TestReadClientHelloNotTLSIsQuick(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() { client.Write([]byte("GE")) }()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	_, raw, err := ReadClientHello(server)
	if !errors.Is(err, ErrNotTLS) {
		t.Fatalf("err = %v", err)
	}
	if string(raw) != "GE" {
		t.Fatalf("raw = %q", raw)
	}
}
