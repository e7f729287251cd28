package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// createDevice removes a stale TUN of the same name (see removeStaleTUN),
// creates the TUN with virtio-net offloads (wireguard's CreateTUN
// enables TSO/USO on read and GRO on write when the kernel allows), assigns
// the node subnet's network address /32, brings it up and routes the overlay
// network through it. Everything happens in the current network namespace.
func createDevice(name string, mtu int, subnet, network netip.Prefix) (tun.Device, error) {
	if err := removeStaleTUN(name); err != nil {
		return nil, err
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

// ErrForeignLink is wrapped in New's error when a link of the device's name
// exists and is not a stale TUN: weft leaves it alone and does not start.
var ErrForeignLink = errors.New("the device name is taken")

// removeStaleTUN deletes a link called name only when it is a TUN that no
// process holds (a persistent leftover): its routes go with it. Any other
// link of that name (a bridge, a veth, the underlay, a TAP, a TUN another
// process has open, e.g. a running weftd) is left alone and reported: weft
// must never delete what is not its own.
func removeStaleTUN(name string) error {
	old, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up device %s: %w", name, err)
	}
	if err := staleTUN(old); err != nil {
		return fmt.Errorf("refusing to replace link %s: %w (choose another TUN name, or remove it yourself): %w", name, err, ErrForeignLink)
	}
	if err := netlink.LinkDel(old); err != nil {
		return fmt.Errorf("remove stale TUN %s: %w", name, err)
	}
	return nil
}

// staleTUN says why link is not a stale TUN, or nil when it is one.
func staleTUN(link netlink.Link) error {
	t, ok := link.(*netlink.Tuntap)
	switch {
	case !ok:
		return fmt.Errorf("it is a %s device, not a TUN", link.Type())
	case t.Mode != netlink.TUNTAP_MODE_TUN:
		return errors.New("it is a TAP device, not a TUN")
	case t.MasterIndex != 0:
		return fmt.Errorf("it is attached to master link %d", t.MasterIndex)
	case t.Flags&netlink.TUNTAP_MULTI_QUEUE != 0:
		// The kernel reports attached queues of multi-queue TUNs only.
		if t.Queues > 0 {
			return fmt.Errorf("a process holds the TUN (%d queue(s) attached; another weftd?)", t.Queues)
		}
		return nil
	}
	return probeTUNHeld(t.Name)
}

// probeTUNHeld attaches to the single-queue TUN name for a moment: the
// kernel refuses (EBUSY) while another process holds it.
func probeTUNHeld(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun to probe it: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	switch err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); {
	case errors.Is(err, unix.EBUSY):
		return errors.New("a process holds the TUN (another weftd?)")
	case err != nil:
		return fmt.Errorf("probe the TUN: %w", err)
	}
	return nil
}
