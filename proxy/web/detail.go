package web

import (
	"fmt"
	"net/http"

	"github.com/tlsresume/tlsresume/inspect"
)

// connDetail is GET /api/conn?seq=N: one record with what the page shows
// beside it: names for its extensions, the rows its lineage points to, and
// the later connections that brought its tickets back.
type connDetail struct {
	Seq        uint64              `json:"seq"`
	Open       bool                `json:"open"`
	Record     *inspect.ConnRecord `json:"record"`
	Program    string              `json:"program"`
	Likely     string              `json:"likely,omitempty"` // row.Likely
	Host       string              `json:"host"`
	Family     string              `json:"family,omitempty"`
	Capture    string              `json:"capture,omitempty"` // row.Capture
	Extensions []extension         `json:"extensions"`
	TicketSeq  uint64              `json:"ticket_seq,omitempty"`
	SessionSeq uint64              `json:"session_seq,omitempty"`
	MirrorSeq  uint64              `json:"mirror_seq,omitempty"` // the row of mirrored.from, when the view still has it
	Returned   []lineageRef        `json:"returned,omitempty"`
	// Explain: for a record without a proxy verdict (read from a capture),
	// what its hello and the server's answer show, as the table says it.
	Explain string `json:"explain,omitempty"`
	// TransportParameters names the hello's QUIC transport parameters, in
	// order (ids above 2^53 do not survive a JavaScript number).
	TransportParameters []string `json:"transport_parameters,omitempty"`
	// Names of the hello's values, by the functions the reports and the
	// diff name them with (inspect.GroupName, inspect.VersionName), so
	// the page names a group as they do.
	Names *helloNames `json:"names,omitempty"`
}

// helloNames names a hello's lists, in their order.
type helloNames struct {
	Versions  []string `json:"versions"` // supported_versions, else legacy_version
	Groups    []string `json:"groups"`
	KeyShares []string `json:"key_shares"`
	// ServerVersion names the server's answer's version, when one was
	// seen.
	ServerVersion string `json:"server_version,omitempty"`
}

func namesOf(r *inspect.ConnRecord) *helloNames {
	ch := r.ClientHello
	if ch == nil {
		return nil
	}
	n := &helloNames{Versions: []string{}, Groups: []string{}, KeyShares: []string{}}
	versions := ch.SupportedVersions
	if len(versions) == 0 {
		versions = []int{ch.LegacyVersion}
	}
	for _, v := range versions {
		n.Versions = append(n.Versions, inspect.VersionName(uint16(v)))
	}
	for _, g := range ch.SupportedGroups {
		n.Groups = append(n.Groups, inspect.GroupName(g))
	}
	for _, g := range ch.KeyShareGroups {
		n.KeyShares = append(n.KeyShares, inspect.GroupName(g))
	}
	if sh := r.ServerHello; sh != nil && sh.Version != 0 {
		n.ServerVersion = inspect.VersionName(uint16(sh.Version))
	}
	return n
}

type extension struct {
	Type   int    `json:"type"`
	Name   string `json:"name"`
	Grease bool   `json:"grease,omitempty"`
}

type lineageRef struct {
	Seq uint64 `json:"seq"`
	ID  string `json:"id"`
	Leg string `json:"leg"` // client: it brought back this connection's ticket; upstream: it reused its session
}

func (s *Server) handleConn(w http.ResponseWriter, r *http.Request) {
	seq, err := uintParam(r.URL.Query().Get("seq"), 0)
	if err != nil || seq == 0 {
		httpError(w, "seq: want the number of a row", http.StatusBadRequest)
		return
	}
	e, ok := s.hist.get(seq)
	if !ok {
		httpError(w, fmt.Sprintf("connection %d is not in the view's history (any more)", seq), http.StatusNotFound)
		return
	}
	rec, err := s.hist.record(&e)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rw := newRow(&e, rec, s.hist.seqOf)
	d := connDetail{Seq: seq, Open: !e.closed, Record: rec, Program: rw.Program, Likely: rw.Likely, Host: rw.Host, Family: rw.Family, Capture: rw.Capture,
		TicketSeq: rw.TicketSeq, SessionSeq: rw.SessionSeq, Extensions: []extension{}, Names: namesOf(rec)}
	if m := rec.Mirrored; m != nil && m.From != "" {
		d.MirrorSeq = s.hist.seqOf(m.From, seq)
	}
	if e.closed && rec.Verdict.Code == "" {
		d.Explain = inspect.Explain(&rec.Record)
	}
	if ch := rec.ClientHello; ch != nil {
		for _, id := range ch.QUICTransportParameters {
			d.TransportParameters = append(d.TransportParameters, inspect.QUICParameterName(id))
		}
		for _, t := range ch.Extensions {
			d.Extensions = append(d.Extensions, extension{Type: t, Name: inspect.ExtensionName(uint16(t)), Grease: inspect.IsGREASE(uint16(t))})
		}
	}
	err = s.each(s.hist.snapshot(seq).entries, func(later *entry, lr *inspect.ConnRecord) bool {
		if l := lr.ClientLeg; l != nil && l.TicketFrom == rec.ID {
			d.Returned = append(d.Returned, lineageRef{later.seq, lr.ID, "client"})
		}
		if u := lr.UpstreamLeg; u != nil && u.SessionFrom == rec.ID {
			d.Returned = append(d.Returned, lineageRef{later.seq, lr.ID, "upstream"})
		}
		return true
	})
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, d)
}
