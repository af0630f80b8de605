package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// serverName is the name the clients ask for; the origin's certificate
// carries it and 127.0.0.1.
const serverName = "localhost"

// Sizes of the origin's two responses.
const (
	smallSize = 128
	bulkSize  = 1 << 20
)

// origin is the in-process HTTPS server every contender ends at: TLS 1.3
// only, session tickets on (crypto/tls's default), h2 and HTTP/1.1. It
// counts its handshakes and how many of them resumed, so that each proxy's
// upstream resumption is seen from the server's side too.
type origin struct {
	addr   string // 127.0.0.1:port
	caFile string // PEM of the CA that signed its certificate
	caCert *x509.Certificate
	roots  *x509.CertPool // trusts caCert

	handshakes, resumed atomic.Int64
	errs                errorLog // lines net/http logged (handshake errors)

	srv  *http.Server
	done chan error
}

// originCounts is a snapshot of the origin's counters.
type originCounts struct {
	Handshakes int64 `json:"handshakes"`
	Resumed    int64 `json:"resumed"`
	Errors     int64 `json:"errors"` // lines net/http logged, such as TLS handshake errors
}

func (o *origin) counts() originCounts {
	return originCounts{o.handshakes.Load(), o.resumed.Load(), o.errs.count()}
}

func (c originCounts) sub(d originCounts) originCounts {
	return originCounts{c.Handshakes - d.Handshakes, c.Resumed - d.Resumed, c.Errors - d.Errors}
}

// startOrigin mints a CA and a leaf in dir and serves on 127.0.0.1.
func startOrigin(dir string) (*origin, error) {
	cert, caCert, caPEM, err := mintOriginCerts()
	if err != nil {
		return nil, fmt.Errorf("minting the origin's certificates: %w", err)
	}
	o := &origin{caFile: filepath.Join(dir, "origin-ca.pem"), caCert: caCert, roots: x509.NewCertPool(), done: make(chan error, 1)}
	if err := os.WriteFile(o.caFile, caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("writing the origin's CA: %w", err)
	}
	o.roots.AddCert(caCert)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2", "http/1.1"},
		// crypto/tls calls VerifyConnection on every server handshake, full
		// or resumed (handshake_server_tls13.go, readClientCertificate).
		VerifyConnection: func(cs tls.ConnectionState) error {
			o.handshakes.Add(1)
			if cs.DidResume {
				o.resumed.Add(1)
			}
			return nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("origin listener: %w", err)
	}
	o.addr = ln.Addr().String()
	o.srv = &http.Server{
		Handler:           originHandler(),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(&o.errs, "", 0),
	}
	go func() { o.done <- o.srv.ServeTLS(ln, "", "") }()
	return o, nil
}

func (o *origin) close() {
	o.srv.Close()
	<-o.done
}

// originHandler serves /small (128 bytes) and /bulk (1 MiB).
func originHandler() http.Handler {
	small := bytes.Repeat([]byte("s"), smallSize)
	bulk := make([]byte, bulkSize)
	for i := range bulk {
		bulk[i] = byte(i)
	}
	mux := http.NewServeMux()
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}
	}
	mux.Handle("GET /small", serve(small))
	mux.Handle("GET /bulk", serve(bulk))
	return mux
}

// mintOriginCerts makes a throwaway CA and a leaf for localhost and
// 127.0.0.1 signed by it, both ECDSA P-256.
func mintOriginCerts() (tls.Certificate, *x509.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsresume loadbench origin CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: serverName},
		DNSNames:     []string{serverName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: key}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return cert, ca, caPEM, nil
}

// errorLog counts the lines net/http logs and keeps the first few.
type errorLog struct {
	mu    sync.Mutex
	n     int64
	first []string
}

func (e *errorLog) Write(b []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.first) < 5 {
		e.first = append(e.first, string(bytes.TrimSpace(b)))
	}
	return len(b), nil
}

func (e *errorLog) count() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func (e *errorLog) samples() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.first...)
}
