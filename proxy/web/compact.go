package web

import (
	"strconv"
	"strings"
	"sync"
	"unique"

	"github.com/tlsresume/tlsresume/inspect"
)

// compactor shares what records repeat between the connections of one
// program: the hello's lists and fingerprints, the legs' words, the
// mirrored names, the verdict text. A record arrives with its own copy of
// each (about 3.2 KB in all); the history then keeps one copy per distinct
// value. The record itself is copied, not changed: other subscribers of
// the proxy's stream hold the same one.
//
// Strings are canonicalised with package unique (weakly held: a value no
// record uses any more is collected). Slices go through a bounded table.
type compactor struct {
	mu     sync.Mutex
	ints   map[string][]int
	strs   map[string][]string
	keyBuf []byte
}

// maxShared bounds each table; past it, the table starts afresh (records
// stored before keep their copies).
const maxShared = 1 << 14

func newCompactor() *compactor {
	return &compactor{ints: map[string][]int{}, strs: map[string][]string{}}
}

// record returns r with its repeated parts shared.
func (c *compactor) record(r *inspect.ConnRecord) *inspect.ConnRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := *r
	s := str
	out.Source = inspect.Source(s(string(r.Source)))
	out.Transport = s(r.Transport)
	out.ServerAddr, out.SNI, out.Target, out.UserAgent, out.Passthrough = s(r.ServerAddr), s(r.SNI), s(r.Target), s(r.UserAgent), s(r.Passthrough)
	out.Verdict.Text = s(r.Verdict.Text)
	if h := r.ClientHello; h != nil {
		hc := *h
		hc.CipherSuites, hc.CompressionMethods, hc.Extensions = c.intList(h.CipherSuites), c.intList(h.CompressionMethods), c.intList(h.Extensions)
		hc.SupportedVersions, hc.SupportedGroups, hc.KeyShareGroups = c.intList(h.SupportedVersions), c.intList(h.SupportedGroups), c.intList(h.KeyShareGroups)
		hc.SignatureAlgorithms, hc.ECPointFormats = c.intList(h.SignatureAlgorithms), c.intList(h.ECPointFormats)
		hc.PSKKeyExchangeModes, hc.CompressCertificate = c.intList(h.PSKKeyExchangeModes), c.intList(h.CompressCertificate)
		hc.Grease, hc.ALPN = c.strList(h.Grease), c.strList(h.ALPN)
		hc.QUICTransportParameters = c.intList(h.QUICTransportParameters)
		hc.JA3, hc.JA3Hash, hc.JA4, hc.JA4R = s(h.JA3), s(h.JA3Hash), s(h.JA4), s(h.JA4R)
		hc.Attempt = inspect.Attempt(s(string(h.Attempt)))
		out.ClientHello = &hc
	}
	if sh := r.ServerHello; sh != nil {
		shc := *sh
		shc.Extensions, shc.ALPN = c.intList(sh.Extensions), s(sh.ALPN)
		out.ServerHello = &shc
	}
	if l := r.ClientLeg; l != nil {
		lc := *l
		lc.Version, lc.CipherSuite, lc.ALPN, lc.Error = s(l.Version), s(l.CipherSuite), s(l.ALPN), s(l.Error)
		out.ClientLeg = &lc
	}
	if u := r.UpstreamLeg; u != nil {
		uc := *u
		uc.Addr, uc.RemoteAddr, uc.SNI, uc.Version = s(u.Addr), s(u.RemoteAddr), s(u.SNI), s(u.Version)
		uc.CipherSuite, uc.ALPN, uc.Error = s(u.CipherSuite), s(u.ALPN), s(u.Error)
		out.UpstreamLeg = &uc
	}
	if m := r.Mirrored; m != nil {
		mc := *m
		mc.MaxVersion = s(m.MaxVersion)
		mc.ALPN, mc.Names, mc.Overrides, mc.Mismatch = c.strList(m.ALPN), c.strList(m.Names), c.strList(m.Overrides), c.strList(m.Mismatch)
		out.Mirrored = &mc
	}
	return &out
}

func str(v string) string {
	if v == "" {
		return ""
	}
	return unique.Make(v).Value()
}

func (c *compactor) intList(v []int) []int {
	if v == nil {
		return nil
	}
	b := c.keyBuf[:0]
	for _, n := range v {
		b = strconv.AppendInt(b, int64(n), 36)
		b = append(b, ',')
	}
	c.keyBuf = b
	if got, ok := c.ints[string(b)]; ok {
		return got
	}
	if len(c.ints) >= maxShared {
		c.ints = map[string][]int{}
	}
	c.ints[string(b)] = v
	return v
}

func (c *compactor) strList(v []string) []string {
	if v == nil {
		return nil
	}
	key := strings.Join(v, "\x00")
	if got, ok := c.strs[key]; ok {
		return got
	}
	if len(c.strs) >= maxShared {
		c.strs = map[string][]string{}
	}
	shared := make([]string, len(v))
	for i := range v {
		shared[i] = str(v[i])
	}
	c.strs[key] = shared
	return shared
}
