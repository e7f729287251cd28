// Package guard keeps containers from passing as underlay traffic: rules in
// the host's netfilter, in a table of weft's own, drop what arrives from the
// containers' bridge with a source outside this node's subnet (a container
// forging a peer's address, to this host or through it to another) and UDP
// to weft's port that is not overlay traffic (a container talking to weftd
// or, masqueraded, to another node's weftd). See docs/reliability.md,
// "Threat model".
package guard

import (
	"errors"
	"fmt"
	"net/netip"
)

// DefaultTable is the nftables table (family ip) the guard lives in; weft
// touches no other table for it.
const DefaultTable = "weft-guard"

// Drop reasons, as named counters in the table and as metric labels.
const (
	// ReasonSpoofedSource: from the bridge, source outside this node's subnet.
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
	Bridge  string       // the bridge containers attach to (the CNI config's "bridge")
	Subnet  netip.Prefix // this node's subnet: the only sources allowed from the bridge
	Network netip.Prefix // the overlay network: UDP to weft's port inside it is container traffic
	Port    uint16       // weft's UDP port
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
	case !s.Subnet.IsValid() || !s.Subnet.Addr().Is4():
		return fmt.Errorf("guard: subnet %v is not an IPv4 prefix", s.Subnet)
	case !s.Network.IsValid() || !s.Network.Addr().Is4() || !s.Network.Contains(s.Subnet.Addr()) || s.Network.Bits() > s.Subnet.Bits():
		return fmt.Errorf("guard: subnet %v is not inside network %v", s.Subnet, s.Network)
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
