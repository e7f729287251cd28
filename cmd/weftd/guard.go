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
func (d *weftd) installGuard(network, subnet netip.Prefix, port int) error {
	if d.opts.policyBridge == "" {
		d.log.Warn("no container bridge named (--policy-bridge \"\"): containers are not kept from forging underlay traffic")
		return nil
	}
	spec := guard.Spec{Bridge: d.opts.policyBridge, Subnet: subnet.Masked(), Network: network.Masked(), Port: uint16(port),
		EtcdPorts: d.etcdPorts}
	if err := d.state.guard.Install(spec); err != nil {
		return fmt.Errorf("container guard (nftables table ip %s; --policy-bridge \"\" runs without it): %w", guard.DefaultTable, err)
	}
	d.log.Info("container guard in force", "table", guard.DefaultTable, "bridge", spec.Bridge,
		"allowedSources", spec.Subnet, "weftPort", spec.Port, "embeddedEtcdPorts", spec.EtcdPorts)
	return nil
}
