package cni

import (
	"net/netip"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// checkSubnetFree refuses a node subnet (from the subnet file) that holds an
// address of another interface of the host: giving containers addresses
// inside it would shadow the host's own (an underlay, a VPN, a service
// address). The bridge's own gateway address and the subnet's network
// address on weftd's TUN or on the VXLAN device (a /32 or /128, as weftd
// and flanneld assign it; never a container's) are weft's and allowed.
// IPv6 link-local addresses are in no node subnet.
func checkSubnetFree(subnet netip.Prefix, bridge string) error {
	subnet = subnet.Masked()
	family := netlink.FAMILY_V4
	if subnet.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	links, err := netlinksafe.LinkList() // retries a dump the kernel interrupted (busy host)
	if err != nil {
		return internalError("list the host's interfaces: %v", err)
	}
	for _, l := range links {
		if l.Attrs().Name == bridge {
			continue
		}
		addrs, err := netlinksafe.AddrList(l, family)
		if err != nil {
			return internalError("list the addresses of %s: %v", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || !subnet.Contains(ip.Unmap()) {
				continue
			}
			ones, _ := a.Mask.Size()
			_, tun := l.(*netlink.Tuntap)
			_, vxlan := l.(*netlink.Vxlan)
			if (tun || vxlan) && ones == subnet.Addr().BitLen() && ip.Unmap() == subnet.Addr() {
				continue
			}
			return internalError("the node subnet %s from the subnet file overlaps address %s of interface %s: refusing to give containers addresses there",
				subnet, a.IPNet, l.Attrs().Name)
		}
	}
	return nil
}
