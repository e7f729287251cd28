// Package guard keeps containers from passing as underlay traffic: rules in
// the host's netfilter, in tables of weft's own (ip and ip6), drop what
// arrives from the containers' bridge with a source outside this node's
// subnet of that family (a container forging a peer's address, to this
// host or through it to another) and UDP to weft's port that is not
// overlay traffic (a container talking to weftd or, masqueraded, to
// another node's weftd). See docs/reliability.md, "Threat model".
package guard

import (
	"errors"
	"fmt"
	"net/netip"
)

// DefaultTable is the name of the nftables tables (families ip and ip6)
// the guard lives in; weft touches no other table for it.
const DefaultTable = "weft-guard"

// Drop reasons, as named counters in the table and as metric labels.
const (
	// ReasonSpoofedSource: from the bridge, source outside this node's
	// subnet of its family (IPv6: link-local and :: aside; any other IPv6
	// source when the network has no IPv6, any IPv4 when it has no IPv4).
	ReasonSpoofedSource = "bridge_spoofed_source"
	// ReasonWeftPort: from the bridge, UDP to weft's port on this host or
	// on an address outside the overlay network (another node's weftd).
	ReasonWeftPort = "bridge_to_weft_port"
	// ReasonEtcd: TCP from a container (a source in the overlay network,
	// from this node's bridge or another node's containers through weft0
	// or the underlay) to the embedded etcd's client or peer port on this
	// host. Its etcd has no authentication: a container could rewrite
	// leases and policies.
	ReasonEtcd = "container_to_embedded_etcd"
)

// Reasons lists the drop reasons in a fixed order.
var Reasons = [...]string{ReasonSpoofedSource, ReasonWeftPort, ReasonEtcd}

// Spec is what the guard enforces for one node.
type Spec struct {
	Bridge string // the bridge containers attach to (the CNI config's "bridge")
	// Subnet is this node's IPv4 subnet: the only IPv4 sources allowed from
	// the bridge (invalid in an IPv6-only network: none are).
	Subnet netip.Prefix
	// Network is the IPv4 overlay network: UDP to weft's port inside it is
	// container traffic (invalid in an IPv6-only network).
	Network netip.Prefix
	// Subnet6 and Network6 are the same for IPv6 (invalid when the network
	// has no IPv6: then no IPv6 source but link-local and :: may leave the
	// bridge).
	Subnet6, Network6 netip.Prefix
	Port              uint16 // weft's UDP port
	// EtcdPorts are the TCP ports of the embedded etcd weftd runs (client
	// and peer), which containers may not reach on this host; none when
	// weftd runs no etcd.
	EtcdPorts []uint16
}

// Validate checks that s describes a node.
func (s Spec) Validate() error {
	switch {
	case s.Bridge == "" || len(s.Bridge) > 15:
		return fmt.Errorf("guard: bridge name %q: want 1 to 15 characters", s.Bridge)
	case !s.Subnet.IsValid() && !s.Subnet6.IsValid():
		return errors.New("guard: no subnet of either family")
	case s.Subnet.IsValid() != s.Network.IsValid():
		return fmt.Errorf("guard: IPv4 subnet %v and network %v: give both or neither", s.Subnet, s.Network)
	case s.Subnet.IsValid() && !s.Subnet.Addr().Is4():
		return fmt.Errorf("guard: subnet %v is not an IPv4 prefix", s.Subnet)
	case s.Subnet.IsValid() && (!s.Network.Addr().Is4() || !s.Network.Contains(s.Subnet.Addr()) || s.Network.Bits() > s.Subnet.Bits()):
		return fmt.Errorf("guard: subnet %v is not inside network %v", s.Subnet, s.Network)
	case s.Subnet6.IsValid() != s.Network6.IsValid():
		return fmt.Errorf("guard: IPv6 subnet %v and network %v: give both or neither", s.Subnet6, s.Network6)
	case s.Subnet6.IsValid() && (!s.Subnet6.Addr().Is6() || s.Subnet6.Addr().Is4In6()):
		return fmt.Errorf("guard: IPv6 subnet %v is not an IPv6 prefix", s.Subnet6)
	case s.Subnet6.IsValid() && (!s.Network6.Addr().Is6() || !s.Network6.Contains(s.Subnet6.Addr()) || s.Network6.Bits() > s.Subnet6.Bits()):
		return fmt.Errorf("guard: IPv6 subnet %v is not inside network %v", s.Subnet6, s.Network6)
	case s.Port == 0:
		return errors.New("guard: port 0")
	}
	for _, p := range s.EtcdPorts {
		if p == 0 {
			return errors.New("guard: etcd port 0")
		}
	}
	return nil
}
