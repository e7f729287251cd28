package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureBridge makes sure the bridge exists, is up, has the MTU and holds
// the gateways (e.g. 10.244.7.1/24 and fd10:244:0:7::1/64, one per family
// of the network) as its only addresses besides IPv6 link-local ones: an
// address left from an earlier lease of this node, or of a family the
// network no longer has, is removed. The IPv6 gateway is added without
// duplicate address detection (weft owns the subnet), so containers can
// use it at once. Call it in the host namespace; concurrent callers are
// fine.
func ensureBridge(name string, gateways []netip.Prefix, mtu int) (*netlink.Bridge, error) {
	if len(gateways) == 0 {
		return nil, errors.New("bridge " + name + ": no gateway address")
	}
	mac := gatewayMAC(gateways[0].Addr())
	br, err := bridgeByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		br, err = createBridge(name, mtu, mac)
	}
	if err != nil {
		return nil, err
	}
	if br.HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return nil, fmt.Errorf("set MAC %s on bridge %s: %w", mac, name, err)
		}
	}
	if br.MTU != mtu {
		if err := netlink.LinkSetMTU(br, mtu); err != nil {
			return nil, fmt.Errorf("set MTU %d on bridge %s: %w", mtu, name, err)
		}
	}
	// The node takes no router advertisement from a container on the
	// bridge, whatever the network's families (an IPv4-only network's
	// bridge has IPv6 too: TestRogueRouterAdvertisementIgnored).
	if err := refuseRouterAdvertisements(name); err != nil {
		return nil, err
	}
	var want4, want6 netip.Prefix
	for _, gw := range gateways {
		if gw.Addr().Is6() {
			want6 = gw
			if err := enableIPv6On(name, false); err != nil {
				return nil, err
			}
		} else {
			want4 = gw
		}
	}
	if err := setBridgeAddress(br, netlink.FAMILY_V4, want4); err != nil {
		return nil, err
	}
	if err := setBridgeAddress(br, netlink.FAMILY_V6, want6); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return bridgeByName(name)
}

func bridgeByName(name string) (*netlink.Bridge, error) {
	link, err := netlinksafe.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up bridge %s: %w", name, err)
	}
	br, ok := link.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%s already exists and is a %s, not a bridge", name, link.Type())
	}
	return br, nil
}

// gatewayMAC is the bridge's fixed MAC, derived from the gateway address
// (locally administered 0a:58 + the IPv4 address, or the last four bytes
// of the IPv6 one on an IPv6-only network). A bridge without a set
// MAC follows its ports, so containers' ARP entries for the gateway would go
// stale whenever the first container leaves.
func gatewayMAC(gw netip.Addr) net.HardwareAddr {
	b := gw.AsSlice()
	a := b[len(b)-4:]
	return net.HardwareAddr{0x0a, 0x58, a[0], a[1], a[2], a[3]}
}

func createBridge(name string, mtu int, mac net.HardwareAddr) (*netlink.Bridge, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	attrs.HardwareAddr = mac
	err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	return bridgeByName(name)
}

// setBridgeAddress makes want (invalid: none) the bridge's only address
// of the family, IPv6 link-local addresses aside.
func setBridgeAddress(br *netlink.Bridge, family int, want netip.Prefix) error {
	addrs, err := netlinksafe.AddrList(br, family)
	if err != nil {
		return fmt.Errorf("list addresses of bridge %s: %w", br.Name, err)
	}
	found := false
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		bits, _ := a.Mask.Size()
		if want.IsValid() && ip.Unmap() == want.Addr() && bits == want.Bits() {
			found = true
			continue
		}
		if err := netlink.AddrDel(br, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("remove stale address %s from bridge %s: %w", a.IPNet, br.Name, err)
		}
	}
	if found || !want.IsValid() {
		return nil
	}
	addr := &netlink.Addr{IPNet: addrToIPNet(want.Addr(), want.Bits())}
	if want.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	err = netlink.AddrAdd(br, addr)
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to bridge %s: %w", want, br.Name, err)
	}
	return nil
}
