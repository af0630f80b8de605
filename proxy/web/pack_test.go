package web

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tlsresume/tlsresume/inspect"
)

// TestPackPlan: the codec plans every field of inspect.ConnRecord — a
// field of a kind it cannot pack fails here, naming it — and refuses such
// kinds, unexported fields, types that hold themselves, and a key, inline
// or derived field that does not exist (a rename would silently stop it
// being packed apart).
func TestPackPlan(t *testing.T) {
	p, err := recordPlan()
	if err != nil {
		t.Fatalf("inspect.ConnRecord: %v", err)
	}
	if n := countFields(p); n < 100 {
		t.Errorf("the plan has %d fields; ConnRecord and what it holds have more", n)
	}
	type (
		withMap   struct{ M map[string]int }
		withIface struct{ I any }
		withChan  struct{ C chan int }
		withArray struct{ A [4]byte }
		hidden    struct{ x int }
		selfRef   struct{ Next *selfRef }
		named     struct{ ID, Name string }
	)
	derived := func(unsafe.Pointer) string { return "" }
	for _, tt := range []struct {
		t       reflect.Type
		key     string
		inline  []string
		derived string
		wantErr string
	}{
		{reflect.TypeFor[withMap](), "", nil, "", "withMap.M: a map[string]int"},
		{reflect.TypeFor[withIface](), "", nil, "", "withIface.I: a interface {}"},
		{reflect.TypeFor[withChan](), "", nil, "", "withChan.C: a chan int"},
		{reflect.TypeFor[withArray](), "", nil, "", "withArray.A: a [4]uint8"},
		{reflect.TypeFor[hidden](), "", nil, "", "hidden.x: an unexported field"},
		{reflect.TypeFor[selfRef](), "", nil, "", "holds itself"},
		{reflect.TypeFor[named](), "named.Id", nil, "", "no string field named.Id"},
		{reflect.TypeFor[named](), "named.ID", []string{"named.Nom"}, "", "no string field named.Nom"},
		{reflect.TypeFor[named](), "named.ID", []string{"named.Name"}, "", ""},
		{reflect.TypeFor[named](), "named.ID", nil, "named.Nom", "no string field named.Nom"},
		{reflect.TypeFor[named](), "named.ID", nil, "named.Name", ""},
	} {
		spec := planSpec{key: tt.key, inline: tt.inline}
		if tt.derived != "" {
			spec.derived = map[string]func(unsafe.Pointer) string{tt.derived: derived}
		}
		_, err := newPlan(tt.t, spec)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: %v, want %q", tt.t, err, tt.wantErr)
		}
	}
}

func countFields(p *plan) int {
	n := len(p.fields)
	for _, f := range p.fields {
		for q := f.plan; q != nil; q = q.elem {
			if q.kind == kindStruct {
				n += countFields(q)
			}
		}
	}
	return n
}

// TestPackEdges: what real records seldom hold still comes back as it
// was: nil and empty lists, pointers to zero, -0 and floats that are not
// whole thousandths, times in other zones,
// hex that is not lowercase or of odd length, empty and long strings, a
// full vocabulary, and bytes that are not a packed record.
func TestPackEdges(t *testing.T) {
	zero := 0
	attempt := inspect.AttemptPSK
	base := time.Date(2025, 3, 30, 1, 59, 59, 999999999, time.UTC)
	recs := []*inspect.ConnRecord{
		{},
		{ID: "x", Record: inspect.Record{Time: base.In(time.FixedZone("IST", 5*3600+1800)), Source: "pcap",
			ClientHello: &inspect.ClientHelloRecord{Random: "ABCDEF", SessionID: "abc", CipherSuites: []int{}, Extensions: nil,
				ALPN: []string{"", "h2"}, Grease: []string{}, Padding: &zero, ECHType: &zero, LegacyVersion: -1,
				PreSharedKey: inspect.PSKFact{Identities: []inspect.PSKIdentity{{Len: 1, ObfuscatedTicketAge: math.MaxUint32}}}},
			ServerHello: &inspect.ServerHelloRecord{ResumedBy: &attempt, NewSessionTicket: &inspect.TicketFact{}}},
			DurationMS: math.Copysign(0, -1), BytesUp: math.MinInt64, BytesDown: math.MaxInt64,
			ClientLeg:   &inspect.ClientLeg{ClientCert: &inspect.ClientCert{}, TicketFrom: "c1", HandshakeMS: 1.643},
			UpstreamLeg: &inspect.UpstreamLeg{HandshakeMS: math.MaxFloat64}},
		{ID: "f", DurationMS: 1.0000001, ClientLeg: &inspect.ClientLeg{HandshakeMS: math.SmallestNonzeroFloat64},
			UpstreamLeg: &inspect.UpstreamLeg{HandshakeMS: -123456.789}},
		{ID: "g", DurationMS: 1 << 52, ClientLeg: &inspect.ClientLeg{HandshakeMS: 0.1}, UpstreamLeg: &inspect.UpstreamLeg{HandshakeMS: 9e15}},
		{ID: strings.Repeat("é", 300), Record: inspect.Record{Time: base.In(time.FixedZone("", -(9*3600 + 30*60)))},
			UserAgent: strings.Repeat("0a", 2000), Mirrored: &inspect.Mirrored{Names: []string{"0A", "0a"}}},
		{ID: "y", Record: inspect.Record{Time: time.Unix(0, 1).In(time.Local), QUIC: &inspect.QUICFacts{Retry: &inspect.QUICRetry{}}}},
	}
	// JA3 and its hash as the hello's fields make them (derived), a hash
	// that is not JA3's, and a JA3 that was cut.
	for i, ja3 := range []string{"771,4865-4866,0-10-65281,29-23,0", "771,4865-4866,0-10-65281,29-23,0", "771,4865-4866,0-10…[cut: 90 bytes]"} {
		ch := &inspect.ClientHelloRecord{LegacyVersion: 771, CipherSuites: []int{0x0a0a, 4865, 4866}, Extensions: []int{0, 10, 65281, 0x1a1a},
			SupportedGroups: []int{29, 23}, ECPointFormats: []int{0}, JA3: ja3, JA3Hash: md5Hex(ja3)}
		if i == 1 {
			ch.JA3Hash = "00112233"
		}
		recs = append(recs, &inspect.ConnRecord{ID: fmt.Sprint("j", i), Record: inspect.Record{ClientHello: ch}})
	}
	k := newPacker()
	var scratch inspect.ConnRecord
	for round := range 3 {
		for i, r := range recs {
			want, _ := json.Marshal(r)
			packed := k.pack(r)
			got, err := k.unpack(packed)
			if err != nil {
				t.Fatalf("round %d, record %d: %v", round, i, err)
			}
			if err := k.unpackInto(packed, &scratch); err != nil {
				t.Fatalf("round %d, record %d into a used one: %v", round, i, err)
			}
			for _, g := range []*inspect.ConnRecord{got, &scratch} {
				if b, _ := json.Marshal(g); string(b) != string(want) {
					t.Fatalf("round %d, record %d:\n got %s\nwant %s", round, i, b, want)
				}
			}
			if keyOf(packed) != r.ID {
				t.Errorf("keyOf: %q, want %q", keyOf(packed), r.ID)
			}
		}
		if round == 1 { // full: every value inline from now on
			k.voc.size = vocabBytes
		}
	}
	for _, bad := range []string{"", "\x05ab", "\x01x\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x00" + strings.Repeat("\xff", 40)} {
		if _, err := k.unpack(bad); err == nil {
			t.Errorf("%q unpacked without an error", bad)
		}
	}
}

// BenchmarkUnpack: unpacking one real record (testdata/records.jsonl:
// openssl, curl, Chromium through the proxy), new and into a used record,
// with its recurring values in the vocabulary.
func BenchmarkUnpack(b *testing.B) {
	f, err := os.Open("testdata/records.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	recs, _, _, err := inspect.ReadLog(f)
	f.Close()
	if err != nil || len(recs) == 0 {
		b.Fatalf("testdata/records.jsonl: %d records, %v", len(recs), err)
	}
	k := newPacker()
	var packed []string
	size := 0
	for range 2 {
		packed = packed[:0]
		size = 0
		for _, r := range recs {
			packed = append(packed, k.pack(r))
			size += len(packed[len(packed)-1])
		}
	}
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := k.unpack(packed[i%len(packed)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)/float64(len(packed)), "B/packed")
	})
	b.Run("into", func(b *testing.B) {
		b.ReportAllocs()
		var r inspect.ConnRecord
		for i := 0; b.Loop(); i++ {
			if err := k.unpackInto(packed[i%len(packed)], &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pack", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k.pack(recs[i%len(recs)])
		}
	})
}

// TestHistoryReadersWhilePacking: readers unpack records (taking no lock
// on the vocabulary) while records with new recurring values are packed
// and the vocabulary grows; each reader sees each record as it was added.
// Run with -race.
func TestHistoryReadersWhilePacking(t *testing.T) {
	const n = 2000
	h := newHistory(n)
	recs := make([]*inspect.ConnRecord, n)
	for i := range recs {
		recs[i] = &inspect.ConnRecord{ID: fmt.Sprintf("c%d", i+1),
			Record: inspect.Record{SNI: fmt.Sprintf("host%d.test", i/2), // each name twice: in the vocabulary from its second record
				ClientHello: &inspect.ClientHelloRecord{CipherSuites: []int{i / 2, 4865}}}}
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			var r inspect.ConnRecord
			for {
				select {
				case <-done:
					return
				default:
				}
				es := h.snapshot(0).entries
				for i := len(es) - 1; i >= 0; i -= 5 { // the newest first: their values are the newest in the vocabulary
					e := es[i]
					if err := h.recordInto(&e, &r); err != nil {
						t.Error(err)
						return
					}
					want := recs[e.seq-1]
					if r.ID != want.ID || r.SNI != want.SNI || !slices.Equal(r.ClientHello.CipherSuites, want.ClientHello.CipherSuites) {
						t.Errorf("entry %d unpacked as %s %s %v, want %s %s %v", e.seq, r.ID, r.SNI, r.ClientHello.CipherSuites,
							want.ID, want.SNI, want.ClientHello.CipherSuites)
						return
					}
				}
			}
		})
	}
	for _, r := range recs {
		h.apply(inspect.Event{Kind: inspect.EventClose, Record: r})
	}
	close(done)
	wg.Wait()
	if h.pk.voc.nStrs < n/2 || h.pk.voc.nLists < n/2 {
		t.Errorf("the vocabulary holds %d strings and %d lists: the recurring values did not go in", h.pk.voc.nStrs, h.pk.voc.nLists)
	}
}

// TestHistoryIndexSharesPackedBytes: the history's index by id keeps no
// record alive but the one it points to: its key shares that record's
// packed bytes, after an open is closed (the key is replaced) as after a
// new connection.
func TestHistoryIndexSharesPackedBytes(t *testing.T) {
	h := newHistory(10)
	for _, kind := range []inspect.EventKind{inspect.EventOpen, inspect.EventClose} {
		h.apply(inspect.Event{Kind: kind, Record: &inspect.ConnRecord{ID: "c1", Record: inspect.Record{SNI: "a.test"}}})
	}
	e := h.byID["c1"]
	for k := range h.byID {
		if unsafe.StringData(k) != unsafe.StringData(keyOf(e.packed)) {
			t.Errorf("the index's key %q is not the packed record's bytes: it keeps another record alive", k)
		}
	}
}
