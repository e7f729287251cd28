package main

import (
	"fmt"
	"net/netip"

	"github.com/weftnet/weft/guard"
)

// installGuard puts the container guard in force for this node's subnet:
// nothing from the CNI bridge (--policy-bridge) may pass as underlay
// traffic, and no container (of any node) may reach the embedded etcd. The
// table stays when weftd stops (the containers stay too); the table check
// puts it back (guard.Keeper).
//
// network6 and subnet6 are the IPv6 network and this node's IPv6 subnet
// (invalid when the network has no IPv6: then the guard lets no global
// IPv6 source leave the bridge); network and subnet are invalid in an
// IPv6-only network.
func (d *weftd) installGuard(network, subnet, network6, subnet6 netip.Prefix, port int) error {
	if d.opts.policyBridge == "" {
		d.log.Warn("no container bridge named (--policy-bridge \"\"): containers are not kept from forging underlay traffic")
		return nil
	}
	spec := guard.Spec{Bridge: d.opts.policyBridge, Subnet: subnet.Masked(), Network: network.Masked(),
		Subnet6: subnet6.Masked(), Network6: network6.Masked(), Port: uint16(port), EtcdPorts: d.etcdPorts}
	if err := d.state.guard.Install(spec); err != nil {
		return fmt.Errorf("container guard (nftables tables ip and ip6 %s; --policy-bridge \"\" runs without it): %w", guard.DefaultTable, err)
	}
	d.log.Info("container guard in force", "table", guard.DefaultTable, "bridge", spec.Bridge,
		"allowedSources", spec.Subnet, "allowedIPv6Sources", spec.Subnet6, "weftPort", spec.Port, "embeddedEtcdPorts", spec.EtcdPorts)
	return nil
}
