package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/ip"
)

// masqNet is the container address with the overlay network's mask: the
// pkg/ip rules accept traffic to that network and masquerade the rest, so
// overlay traffic keeps its source address.
func masqNet(addr netip.Addr, networkBits int) *net.IPNet {
	return addrToIPNet(addr, networkBits)
}

// setupMasq masquerades traffic from addr to destinations outside the
// overlay network of its family (iptables or ip6tables, or nftables when
// only that is available), as flannel's bridge delegate does for each of
// a container's addresses.
func setupMasq(network string, addr netip.Addr, networkBits int, containerID, ifname string) error {
	if err := ip.SetupIPMasqForNetworks(nil, []*net.IPNet{masqNet(addr, networkBits)}, network, ifname, containerID); err != nil {
		return fmt.Errorf("set up ipMasq for %s: %w", addr, err)
	}
	return nil
}

// teardownMasq removes the rules of setupMasq for nets (masqNet's);
// missing rules are fine.
func teardownMasq(network string, nets []*net.IPNet, containerID, ifname string) error {
	if len(nets) == 0 {
		return nil
	}
	if err := ip.TeardownIPMasqForNetworks(nets, network, ifname, containerID); err != nil {
		return fmt.Errorf("tear down ipMasq: %w", err)
	}
	return nil
}
