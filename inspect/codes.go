package inspect

// The typed codes of the record: each named type lists its values, each
// value with its one-line meaning. README.md's tables are checked against
// these lists (codes_test.go), so a code is added here and nowhere else.

// SchemaVersion is the record's "v": the version of the JSON shape every
// line of `inspect --format jsonl` and of the proxy's --log carries. Fields
// may be added within a version; a version changes only when a field
// changes meaning or disappears.
const SchemaVersion = 1

// CodeDoc is one value of a typed code and what it means.
type CodeDoc struct {
	Code    string
	Meaning string
}

// Source says how a record's connection was seen.
type Source string

const (
	SourcePcap        Source = "pcap"        // read from a packet capture
	SourceConnect     Source = "connect"     // an HTTP CONNECT through the proxy
	SourceTransparent Source = "transparent" // redirected to the proxy by the kernel (REDIRECT, TPROXY)
	SourceSNI         Source = "sni"         // reached the proxy by its DNS answer, routed by SNI
	SourceWireGuard   Source = "wireguard"   // from a device on tlsresume's WireGuard server (record's device)
)

// SourceDocs lists every Source.
var SourceDocs = []CodeDoc{
	{string(SourcePcap), "read from a packet capture"},
	{string(SourceConnect), "an HTTP CONNECT through the proxy"},
	{string(SourceTransparent), "redirected to the proxy by the kernel (REDIRECT or TPROXY)"},
	{string(SourceSNI), "reached the proxy through its DNS answer, routed by SNI"},
	{string(SourceWireGuard), "from a device on tlsresume's WireGuard server, named by device"},
}

// Attempt says how a ClientHello tried to resume (see AttemptOf); the
// proxy's upstream leg says with it what tlsresume offered the origin.
type Attempt string

const (
	AttemptPSK       Attempt = "psk"        // pre_shared_key offered (TLS 1.3)
	AttemptTicket    Attempt = "ticket"     // session_ticket carrying a ticket (TLS 1.2, RFC 5077)
	AttemptSessionID Attempt = "session_id" // a session ID the server issued (TLS 1.2 and earlier)
	AttemptNone      Attempt = "none"
)

// AttemptDocs lists every Attempt.
var AttemptDocs = []CodeDoc{
	{string(AttemptPSK), "a pre_shared_key extension (TLS 1.3)"},
	{string(AttemptTicket), "a session_ticket extension carrying a ticket (TLS 1.2, RFC 5077)"},
	{string(AttemptSessionID), "a legacy session ID that the same server issued earlier"},
	{string(AttemptNone), "nothing to resume"},
}

// TicketState is what became of the ticket a client offered tlsresume
// (client_leg.ticket).
type TicketState string

const (
	TicketNone     TicketState = "none"     // no ticket offered
	TicketOurs     TicketState = "ours"     // one tlsresume issued, stamped with the connection that issued it
	TicketNotOurs  TicketState = "not_ours" // undecryptable: another server's, or under a key that is gone
	TicketExpired  TicketState = "expired"  // ours, older than the ticket lifetime (7 days)
	TicketDisabled TicketState = "disabled" // tlsresume accepts no tickets on this connection
	TicketRefused  TicketState = "refused"  // ours, refused on purpose by --client-resumption (refused_by says which rule)
)

// TicketStateDocs lists every TicketState.
var TicketStateDocs = []CodeDoc{
	{string(TicketNone), "no ticket was offered"},
	{string(TicketOurs), "a ticket tlsresume issued (ticket_from says which connection)"},
	{string(TicketNotOurs), "a ticket tlsresume cannot decrypt: another server's, or under a key that is gone"},
	{string(TicketExpired), "a ticket of tlsresume's older than 7 days"},
	{string(TicketDisabled), "tlsresume accepts no tickets on this connection"},
	{string(TicketRefused), "a ticket of tlsresume's, refused on purpose by --client-resumption (refused_by names the rule)"},
}

// CacheResult is what tlsresume's upstream session cache found for one
// upstream handshake (upstream_leg.cache).
type CacheResult string

const (
	// CacheHit: a session was handed to crypto/tls, which offers it unless
	// its version, cipher suite or server name no longer fit; resumed says
	// whether the server took it.
	CacheHit CacheResult = "hit"
	// CacheMiss: no session for this server name + address + port.
	CacheMiss CacheResult = "miss"
	// CacheExpired: the session was older than the TTL, or crypto/tls
	// deleted it because the server's ticket lifetime had passed.
	CacheExpired CacheResult = "expired"
	// CacheDropped: crypto/tls deleted the session for another reason (its
	// certificate expired or no longer verifies, or the handshake failed).
	CacheDropped CacheResult = "dropped"
	// CacheOff: the cache is disabled (--upstream-tickets=false).
	CacheOff CacheResult = "off"
	// CacheNotAsked: crypto/tls never asked (the handshake failed before).
	CacheNotAsked CacheResult = ""
)

// CacheResultDocs lists every CacheResult that a record can carry.
var CacheResultDocs = []CodeDoc{
	{string(CacheHit), "a cached session was offered; resumed says whether the origin took it"},
	{string(CacheMiss), "nothing cached for this server name, address and port"},
	{string(CacheExpired), "the cached session was past the TTL or the server's ticket lifetime"},
	{string(CacheDropped), "crypto/tls discarded the cached session (certificate expired or no longer verifies)"},
	{string(CacheOff), "the upstream cache is off (--upstream-tickets=false)"},
}

// EventKind names a step of a connection's life in the record stream.
type EventKind string

const (
	// EventOpen: the connection's hello was read (or could not be): the
	// record carries the client's offer, not yet its legs or verdict.
	EventOpen EventKind = "open"
	// EventClose: the connection ended and its record is final: the
	// record the --log file holds.
	EventClose EventKind = "close"
)

// Event is one record published on the proxy's record stream. Record must
// be treated as read-only: every subscriber shares it. Dropped counts the
// events this subscriber lost, since it subscribed, because it fell behind.
type Event struct {
	Kind    EventKind
	Record  *ConnRecord
	Dropped uint64
}
