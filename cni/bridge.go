package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// ensureBridge makes sure the bridge exists, is up, has the MTU and holds
// gateway (e.g. 10.244.7.1/24) as its only IPv4 address: an address left
// from an earlier lease of this node is removed. Call it in the host
// namespace; concurrent callers are fine.
func ensureBridge(name string, gateway netip.Prefix, mtu int) (*netlink.Bridge, error) {
	mac := gatewayMAC(gateway.Addr())
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
	if err := setBridgeAddress(br, gateway); err != nil {
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
// (locally administered 0a:58 + the IPv4 address). A bridge without a set
// MAC follows its ports, so containers' ARP entries for the gateway would go
// stale whenever the first container leaves.
func gatewayMAC(gw netip.Addr) net.HardwareAddr {
	a := gw.As4()
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

func setBridgeAddress(br *netlink.Bridge, gateway netip.Prefix) error {
	want := &net.IPNet{IP: net.IP(gateway.Addr().AsSlice()), Mask: net.CIDRMask(gateway.Bits(), 32)}
	addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of bridge %s: %w", br.Name, err)
	}
	found := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			found = true
			continue
		}
		if err := netlink.AddrDel(br, &a); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return fmt.Errorf("remove stale address %s from bridge %s: %w", a.IPNet, br.Name, err)
		}
	}
	if found {
		return nil
	}
	err = netlink.AddrAdd(br, &netlink.Addr{IPNet: want})
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to bridge %s: %w", want, br.Name, err)
	}
	return nil
}
