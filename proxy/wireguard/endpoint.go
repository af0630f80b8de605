package wireguard

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// EndpointChoice is the laptop address a device is told to reach the server
// at, and how it was chosen. A laptop with two interfaces (Wi-Fi and a
// docker bridge, Wi-Fi and a VPN) is a known trap: the choice and the
// addresses passed over are shown so that a person can tell, and pass
// --endpoint when it is wrong.
type EndpointChoice struct {
	// Endpoint is HOST:PORT for the configuration.
	Endpoint string
	// Interface and Addr are the chosen interface and its address; both
	// are empty when the endpoint was given.
	Interface string
	Addr      netip.Addr
	// Others are the addresses passed over, best first.
	Others []Candidate
}

// Candidate is one IPv4 address of an interface that is up.
type Candidate struct {
	Interface string
	Addr      netip.Addr
	// Note says what ranks it lower, e.g. "virtual", "not private"; empty
	// for a private address on an interface that looks physical.
	Note string
	rank int
}

// String is "wlan0 192.168.1.20 (virtual)".
func (c Candidate) String() string {
	s := c.Interface + " " + c.Addr.String()
	if c.Note != "" {
		s += " (" + c.Note + ")"
	}
	return s
}

// Describe says in one line which address was chosen and what else there
// was, for the console.
func (c EndpointChoice) Describe() string {
	if c.Interface == "" {
		return fmt.Sprintf("wireguard endpoint %s (given)", c.Endpoint)
	}
	s := fmt.Sprintf("wireguard endpoint %s: interface %s", c.Endpoint, c.Interface)
	if len(c.Others) > 0 {
		others := make([]string, len(c.Others))
		for i, o := range c.Others {
			others[i] = o.String()
		}
		s += "; also up: " + strings.Join(others, ", ") + "; pass --endpoint HOST:PORT if the device reaches this laptop at another"
	}
	return s
}

// ChooseEndpoint returns endpoint itself when it is not empty (checked as
// HOST:PORT), else the laptop's LAN address with port: the first private
// IPv4 address of an interface that is up, not loopback and does not look
// virtual (docker, VPN, bridge), falling back to virtual ones and then to
// other addresses.
func ChooseEndpoint(endpoint string, port uint16) (EndpointChoice, error) {
	if endpoint != "" {
		if _, err := checkEndpoint(endpoint); err != nil {
			return EndpointChoice{}, err
		}
		return EndpointChoice{Endpoint: endpoint}, nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return EndpointChoice{}, fmt.Errorf("wireguard: listing network interfaces: %w", err)
	}
	var all []Candidate
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // an interface that vanished meanwhile
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				all = append(all, candidate(ifc.Name, ifc.Flags, p.Addr()))
			}
		}
	}
	return chooseFrom(all, port)
}

// chooseFrom picks the best of cands (interface order within a rank).
func chooseFrom(cands []Candidate, port uint16) (EndpointChoice, error) {
	cands = slices.DeleteFunc(slices.Clone(cands), func(c Candidate) bool { return c.rank < 0 })
	slices.SortStableFunc(cands, func(a, b Candidate) int { return a.rank - b.rank })
	if len(cands) == 0 {
		return EndpointChoice{}, fmt.Errorf("wireguard: no network interface is up with an IPv4 address a device could reach; pass --endpoint HOST:PORT")
	}
	c := cands[0]
	return EndpointChoice{
		Endpoint:  netip.AddrPortFrom(c.Addr, port).String(),
		Interface: c.Interface,
		Addr:      c.Addr,
		Others:    cands[1:],
	}, nil
}

// virtualPrefixes start the names of interfaces that are not a LAN a phone
// can be on: container bridges, hypervisors' host-only networks, VPNs and
// tunnels (Linux, macOS and the common tools' own names).
var virtualPrefixes = []string{
	"docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "lxc", "lxd", "cni", "flannel", "cali", "podman",
	"tun", "tap", "wg", "utun", "tailscale", "zt", "ipsec", "ppp", "awdl", "llw", "bridge", "anpi", "gif", "stf",
}

// candidate ranks one address: 0 private on a physical-looking interface,
// 1 private on a virtual one, 2 any other global unicast address; -1 for
// what a device can never reach (down, loopback, link-local, IPv6).
func candidate(name string, flags net.Flags, a netip.Addr) Candidate {
	c := Candidate{Interface: name, Addr: a.Unmap()}
	virtual := flags&net.FlagPointToPoint != 0 || slices.ContainsFunc(virtualPrefixes, func(p string) bool { return strings.HasPrefix(name, p) })
	cgnat := netip.MustParsePrefix("100.64.0.0/10").Contains(c.Addr) // VPN meshes (Tailscale) live here
	switch {
	case flags&net.FlagUp == 0 || flags&net.FlagLoopback != 0 || !c.Addr.Is4() || !c.Addr.IsGlobalUnicast():
		c.rank = -1
	case c.Addr.IsPrivate() && !virtual:
		c.rank = 0
	case c.Addr.IsPrivate() || cgnat:
		c.rank, c.Note = 1, "virtual"
	default:
		c.rank, c.Note = 2, "not private"
	}
	return c
}
