package wireguard

import (
	"bufio"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeviceStats is what the server knows of one device now, for the live
// view's device page.
type DeviceStats struct {
	Name      string
	PublicKey Key
	// Endpoint is the UDP address the device last sent from, "" before
	// its first handshake.
	Endpoint string
	// LastHandshake is the last completed WireGuard handshake; zero if
	// none. A device in use hands shake at least every two minutes.
	LastHandshake time.Time
	// RxBytes and TxBytes count WireGuard's bytes from and to the device
	// (encrypted, with WireGuard's headers, without UDP's).
	RxBytes, TxBytes uint64
	// TCPConns and UDPFlows count connections and flows handed to the
	// handlers since Start; ActiveTCP and ActiveUDP are those open now.
	TCPConns, UDPFlows, ActiveTCP, ActiveUDP int64
	// RefusedTCP counts connections reset before the handshake (AcceptTCP
	// or MaxTCPConns); DroppedUDPFlows flows not started (MaxUDPFlows).
	RefusedTCP, DroppedUDPFlows int64
}

// Stats returns every device's statistics, ordered as the devices were
// added. Before Start there are no WireGuard counters.
func (s *Server) Stats() ([]DeviceStats, error) {
	s.mu.Lock()
	devs := slices.Clone(s.devices)
	states := make([]*devState, len(devs))
	for i, d := range devs {
		states[i] = s.byKey[d.PublicKey()]
	}
	dev := s.dev
	s.mu.Unlock()
	peers := map[Key]peerStats{}
	if dev != nil {
		text, err := dev.IpcGet()
		if err != nil {
			return nil, fmt.Errorf("wireguard: reading the device's state: %w", err)
		}
		if peers, err = parsePeerStats(text); err != nil {
			return nil, err
		}
	}
	out := make([]DeviceStats, len(devs))
	for i, d := range devs {
		st, p := states[i], peers[d.PublicKey()]
		out[i] = DeviceStats{
			Name: d.Name, PublicKey: d.PublicKey(),
			Endpoint: p.endpoint, LastHandshake: p.handshake, RxBytes: p.rx, TxBytes: p.tx,
			TCPConns: st.tcpConns.Load(), UDPFlows: st.udpFlows.Load(),
			ActiveTCP: st.activeTCP.Load(), ActiveUDP: st.activeUDP.Load(),
			RefusedTCP: st.refusedTCP.Load(), DroppedUDPFlows: st.droppedUDPFlow.Load(),
		}
	}
	return out, nil
}

// peerStats is one peer's part of the configuration protocol's get answer.
type peerStats struct {
	endpoint  string
	handshake time.Time
	rx, tx    uint64
}

// parsePeerStats reads the peers out of an IpcGet answer: key=value lines
// where each public_key line starts a peer (see the configuration protocol,
// "get=1"). Keys it does not use are skipped.
func parsePeerStats(text string) (map[Key]peerStats, error) {
	peers := map[Key]peerStats{}
	var cur *peerStats
	var key Key
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.handshake = time.Unix(sec, nsec)
			}
			peers[key] = *cur
		}
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		var err error
		switch {
		case k == "public_key":
			flush()
			cur, sec, nsec = &peerStats{}, 0, 0
			key, err = parseHexKey(v)
		case cur == nil:
			// The device's own lines (private_key, listen_port).
		case k == "endpoint":
			cur.endpoint = v
		case k == "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case k == "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case k == "rx_bytes":
			cur.rx, err = strconv.ParseUint(v, 10, 64)
		case k == "tx_bytes":
			cur.tx, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("wireguard: reading the device's state, line %d (%s): %w", line, k, err)
		}
	}
	flush()
	return peers, nil
}
