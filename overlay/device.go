package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/tun"
)

// createDevice removes a stale device of the same name (and with it its
// routes), creates the TUN with virtio-net offloads (wireguard's CreateTUN
// enables TSO/USO on read and GRO on write when the kernel allows), assigns
// the node subnet's network address /32, brings it up and routes the overlay
// network through it. Everything happens in the current network namespace.
func createDevice(name string, mtu int, subnet, network netip.Prefix) (tun.Device, error) {
	if old, err := netlink.LinkByName(name); err == nil {
		if err := netlink.LinkDel(old); err != nil {
			return nil, fmt.Errorf("remove stale device %s: %w", name, err)
		}
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, fmt.Errorf("look up device %s: %w", name, err)
	}
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN %s: %w", name, err)
	}
	if err := configureDevice(name, subnet, network); err != nil {
		_ = dev.Close()
		return nil, err
	}
	return dev, nil
}

func configureDevice(name string, subnet, network netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("look up new device %s: %w", name, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add address %v to %s: %w", addr.IPNet, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	route := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: network.Masked().Addr().AsSlice(), Mask: net.CIDRMask(network.Bits(), 32)},
		Scope:     netlink.SCOPE_LINK,
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route %v dev %s: %w", route.Dst, name, err)
	}
	return nil
}
