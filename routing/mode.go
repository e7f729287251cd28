// Package routing decides, per peer, whether weft reaches it through its
// UDP data path or through a plain kernel route (flannel's DirectRouting
// and host-gw), and keeps weft's own kernel routes: tagged with weft's
// routing protocol number, replaced on lease events, cleaned at start.
// Routes weft did not create are never touched.
package routing

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Protocol is the rtm_protocol value that marks a route as weft's ("proto
// 119" in `ip route`; 0x77 is 'w'). It is outside the numbers iproute2
// names in /etc/iproute2/rt_protos.
const Protocol = 0x77

// Mode is how a peer is reached.
type Mode int

// Modes.
const (
	// ModeUDP: through the TUN and weft's UDP data path.
	ModeUDP Mode = iota
	// ModeDirect: a kernel route "<subnet> via <PublicIP> dev <underlay>".
	ModeDirect
	// ModeUnreachable: host-gw, and the peer is not on this node's L2.
	ModeUnreachable
	numModes
)

// Modes lists every mode, for metrics that report each one.
var Modes = [numModes]Mode{ModeUDP, ModeDirect, ModeUnreachable}

func (m Mode) String() string {
	switch m {
	case ModeUDP:
		return "udp"
	case ModeDirect:
		return "direct"
	case ModeUnreachable:
		return "unreachable"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Policy is what the network config asks for.
type Policy struct {
	// HostGW routes every peer directly (Backend.Type "host-gw").
	HostGW bool
	// DirectRouting routes peers on the same L2 directly, the others
	// through UDP (Backend.Type "udp" with DirectRouting).
	DirectRouting bool
}

// Direct tells whether the policy ever installs routes.
func (p Policy) Direct() bool { return p.HostGW || p.DirectRouting }

// Choose decides how to reach a peer whose PublicIP is peer, given the
// connected prefixes of this node's underlay interface (the prefixes of
// its addresses): a peer whose address lies in one of them is on the same
// L2 and can be the next hop of a plain route.
func Choose(p Policy, peer netip.Addr, onLink []netip.Prefix) Mode {
	if !p.Direct() {
		return ModeUDP
	}
	if OnLink(peer, onLink) {
		return ModeDirect
	}
	if p.HostGW {
		return ModeUnreachable
	}
	return ModeUDP
}

// OnLink tells whether addr is inside one of the connected prefixes of its
// family and is a host address there: not an IPv4 network or broadcast
// address, not an IPv6 subnet-router anycast address (the prefix's first).
func OnLink(addr netip.Addr, onLink []netip.Prefix) bool {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return false
	}
	return slices.ContainsFunc(onLink, func(p netip.Prefix) bool {
		p = p.Masked()
		if p.Addr().Is4() != addr.Is4() || !p.Contains(addr) {
			return false
		}
		if p.Bits() >= p.Addr().BitLen()-1 {
			return true // point-to-point: both addresses are hosts
		}
		if !addr.Is4() {
			return addr != p.Addr()
		}
		return addr != p.Addr() && addr != broadcast(p)
	})
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Route is one of weft's kernel routes: Subnet via Gateway on the underlay.
// Source, when valid, is the preferred source address of packets this host
// sends along it (`src` in `ip route`): weftd sets its TUN's address, the
// source the kernel picks for peers reached through the TUN, so that this
// host's own packets to a peer's subnet leave with the same source whether
// the peer is direct or UDP, and a reply from a service listening on the
// wildcard address to a request for that address comes from it.
type Route struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
	Source  netip.Addr
}

func (r Route) String() string {
	s := r.Subnet.String() + " via " + r.Gateway.String()
	if r.Source.IsValid() {
		s += " src " + r.Source.String()
	}
	return s
}

// plan compares the routes weft wants with what the kernel's main table
// holds. owned are weft's routes there (by protocol), foreign the
// destinations of everyone else's. It returns the weft routes to delete
// (unwanted or wrong), the routes to install, and the wanted routes that
// are not installed because someone else's route has their destination.
func plan(want, owned []Route, foreign []netip.Prefix) (del []netip.Prefix, add, blocked []Route) {
	wanted := make(map[netip.Prefix]Route, len(want))
	for _, r := range want {
		wanted[r.Subnet] = r
	}
	taken := make(map[netip.Prefix]bool, len(foreign))
	for _, p := range foreign {
		taken[p] = true
	}
	have := make(map[netip.Prefix]Route, len(owned))
	for _, r := range owned {
		if w, ok := wanted[r.Subnet]; !ok || w != r || taken[r.Subnet] {
			del = append(del, r.Subnet)
			continue
		}
		have[r.Subnet] = r
	}
	for _, r := range want {
		switch {
		case taken[r.Subnet]:
			blocked = append(blocked, r)
		case have[r.Subnet] != r:
			add = append(add, r)
		}
	}
	slices.SortFunc(del, netip.Prefix.Compare)
	return del, add, blocked
}

// Changes is what one Sync did.
type Changes struct {
	// Added and Deleted are the routes Sync installed and removed.
	Added   []Route
	Deleted []netip.Prefix
	// Blocked are wanted routes whose destination already has a route
	// weft did not create: left alone, not installed.
	Blocked []Route
}

// Binding ties a direct peer's subnet to its link-layer address: a packet
// from the underlay with a source in Subnet must come from MAC.
type Binding struct {
	Subnet netip.Prefix
	MAC    net.HardwareAddr
}

func (b Binding) String() string { return b.Subnet.String() + " from " + b.MAC.String() }
