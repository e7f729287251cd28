package vxlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DeviceSpec is the VXLAN device to make.
type DeviceSpec struct {
	Config
	UnderlayIndex int        // the underlay interface (the VTEP's device)
	PublicIP      netip.Addr // the VTEP's source address
	MTU           int        // the device's MTU (Config.DeviceMTU, DeviceMTUV6)
	// V6 makes the IPv6 side's device (flannel-v6.<VNI>, PublicIP an
	// IPv6 address) rather than flannel.<VNI>.
	V6 bool
}

// Name is the device's name.
func (s DeviceSpec) Name() string {
	if s.V6 {
		return s.DeviceNameV6()
	}
	return s.DeviceName()
}

// ErrNoVXLAN is wrapped when the kernel cannot make a VXLAN device.
var ErrNoVXLAN = errors.New("the kernel cannot make VXLAN devices (module vxlan missing?)")

// ErrNotVXLAN is wrapped when a device of the wanted name is not VXLAN.
var ErrNotVXLAN = errors.New("not a VXLAN device: not weft's, left alone")

// ErrPortInUse is wrapped when the VXLAN port is held by another socket.
var ErrPortInUse = errors.New("the VXLAN UDP port is held by another socket")

// Device is the VXLAN device flannel.<VNI> in the namespace of h.
type Device struct {
	h       *netlink.Handle
	Name    string
	Index   int
	MAC     MAC
	network netip.Prefix
	v6      bool
}

func (d *Device) family() int {
	if d.v6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func (d *Device) bits() int {
	if d.v6 {
		return 128
	}
	return 32
}

// EnsureDevice makes the device, or keeps the one that exists when it is
// compatible (same VNI, port, underlay, source and GBP: a device flanneld
// or an earlier weftd left, whose MAC address the other nodes know). An
// incompatible VXLAN device of that name is replaced, as flanneld does; a
// device of that name that is not a VXLAN device is refused. The device
// is up when EnsureDevice returns.
func EnsureDevice(h *netlink.Handle, spec DeviceSpec) (dev *Device, reused bool, err error) {
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: spec.Name(), MTU: spec.MTU},
		VxlanId:      spec.VNI,
		VtepDevIndex: spec.UnderlayIndex,
		SrcAddr:      spec.PublicIP.AsSlice(),
		Port:         spec.Port,
		Learning:     spec.Learning,
		GBP:          spec.GBP,
	}
	link, err := h.LinkByName(want.Name)
	switch {
	case err == nil:
		old, ok := link.(*netlink.Vxlan)
		if !ok {
			return nil, false, fmt.Errorf("vxlan: a %s device named %s exists: %w (remove it, or use another VNI)", link.Type(), want.Name, ErrNotVXLAN)
		}
		if why := incompatible(old, want); why != "" {
			if err := h.LinkDel(old); err != nil {
				return nil, false, fmt.Errorf("vxlan: replace %s (%s): %w", want.Name, why, err)
			}
		} else {
			reused = true
			if old.MTU != want.MTU {
				if err := h.LinkSetMTU(old, want.MTU); err != nil {
					return nil, false, fmt.Errorf("vxlan: set MTU of %s to %d: %w", want.Name, want.MTU, err)
				}
			}
			if old.Learning != want.Learning {
				// Learning cannot be changed in place.
				if err := h.LinkDel(old); err != nil {
					return nil, false, fmt.Errorf("vxlan: replace %s (learning): %w", want.Name, err)
				}
				reused = false
			}
		}
	case !errors.As(err, new(netlink.LinkNotFoundError)):
		return nil, false, fmt.Errorf("vxlan: look up %s: %w", want.Name, err)
	}
	if !reused {
		if err := h.LinkAdd(want); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EAFNOSUPPORT) {
				return nil, false, fmt.Errorf("vxlan: create %s: %w: %w", want.Name, ErrNoVXLAN, err)
			}
			return nil, false, fmt.Errorf("vxlan: create %s: %w", want.Name, err)
		}
	}
	link, err = h.LinkByName(want.Name)
	if err != nil {
		return nil, false, fmt.Errorf("vxlan: %s: %w", want.Name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, false, fmt.Errorf("vxlan: set %s up: UDP port %d: %w", want.Name, spec.Port, ErrPortInUse)
		}
		return nil, false, fmt.Errorf("vxlan: set %s up: %w", want.Name, err)
	}
	mac, err := MACFrom(link.Attrs().HardwareAddr)
	if err != nil {
		return nil, false, fmt.Errorf("vxlan: %s: %w", want.Name, err)
	}
	if spec.V6 {
		// As flanneld: no router advertisements taken on the device.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+want.Name+"/accept_ra", []byte("0"), 0o644)
	}
	return &Device{h: h, Name: want.Name, Index: link.Attrs().Index, MAC: mac, v6: spec.V6}, reused, nil
}

// incompatible says why an existing device cannot serve as the wanted
// one ("" when it can).
func incompatible(old, want *netlink.Vxlan) string {
	switch {
	case old.VxlanId != want.VxlanId:
		return fmt.Sprintf("VNI %d, want %d", old.VxlanId, want.VxlanId)
	case old.Port != want.Port:
		return fmt.Sprintf("port %d, want %d", old.Port, want.Port)
	case old.VtepDevIndex != want.VtepDevIndex:
		return fmt.Sprintf("underlay index %d, want %d", old.VtepDevIndex, want.VtepDevIndex)
	case !old.SrcAddr.Equal(want.SrcAddr):
		return fmt.Sprintf("source %s, want %s", old.SrcAddr, want.SrcAddr)
	case old.GBP != want.GBP:
		return fmt.Sprintf("GBP %t, want %t", old.GBP, want.GBP)
	case len(old.Group) > 0 && !old.Group.IsUnspecified():
		return fmt.Sprintf("group %s", old.Group)
	}
	return ""
}

// Configure gives the device this node's VTEP address (<subnet>.0/32, as
// flanneld: no route or broadcast comes with it; the IPv6 side's
// <subnet>::/128) and removes its other addresses of that family (but an
// IPv6 link-local one); network is the whole overlay network of the
// family, in which the device's routes lie.
func (d *Device) Configure(subnet, network netip.Prefix) error {
	d.network = network
	link, err := d.h.LinkByIndex(d.Index)
	if err != nil {
		return fmt.Errorf("vxlan: %s: %w", d.Name, err)
	}
	ip := subnet.Masked().Addr()
	addrs, err := d.h.AddrList(link, d.family())
	if err != nil {
		return fmt.Errorf("vxlan: addresses of %s: %w", d.Name, err)
	}
	have := false
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if d.v6 && a.IP.IsLinkLocalUnicast() {
			continue
		}
		if a.IP.Equal(ip.AsSlice()) && ones == d.bits() {
			have = true
			continue
		}
		if err := d.h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("vxlan: remove %s from %s: %w", a.IPNet, d.Name, err)
		}
	}
	if !have {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(d.bits(), d.bits())}}
		if d.v6 {
			addr.Flags = unix.IFA_F_NODAD // the VTEP address is this node's alone (its lease)
		}
		if err := d.h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("vxlan: add %s/%d to %s: %w", ip, d.bits(), d.Name, err)
		}
	}
	return nil
}

// Present tells whether the device is still there and up.
func (d *Device) Present() error {
	link, err := d.h.LinkByIndex(d.Index)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Name, err)
	}
	if link.Attrs().Name != d.Name {
		return fmt.Errorf("%s was renamed to %s", d.Name, link.Attrs().Name)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down", d.Name)
	}
	return nil
}

// Delete removes the device (and so its neighbours, FDB entries, routes).
func (d *Device) Delete() error {
	link, err := d.h.LinkByIndex(d.Index)
	if err != nil {
		return nil
	}
	return d.h.LinkDel(link)
}

// List implements Kernel: the device's permanent neighbours and FDB
// entries and its routes inside the network are the backend's (the
// device is); routes inside the network on other devices are foreign.
func (d *Device) List() (State, []netip.Prefix, error) {
	var s State
	neighs, err := d.h.NeighList(d.Index, d.family())
	if err != nil {
		return s, nil, fmt.Errorf("neighbours of %s: %w", d.Name, err)
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		m, merr := MACFrom(n.HardwareAddr)
		if !ok || merr != nil || n.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		s.Neighs = append(s.Neighs, Neigh{IP: ip.Unmap(), MAC: m})
	}
	fdbs, err := d.h.NeighList(d.Index, unix.AF_BRIDGE)
	if err != nil {
		return s, nil, fmt.Errorf("FDB of %s: %w", d.Name, err)
	}
	for _, n := range fdbs {
		ip, ok := netip.AddrFromSlice(n.IP)
		m, merr := MACFrom(n.HardwareAddr)
		if !ok || merr != nil || m == (MAC{}) || n.State&netlink.NUD_PERMANENT == 0 || n.Flags&netlink.NTF_SELF == 0 {
			continue // the all-zeros flood entries are someone's configuration
		}
		s.FDBs = append(s.FDBs, FDB{MAC: m, Dst: ip.Unmap()})
	}
	var routes []netlink.Route
	for attempt := 0; ; attempt++ {
		routes, err = d.h.RouteListFiltered(d.family(), &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err == nil {
			break
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 4 {
			return s, nil, fmt.Errorf("list routes: %w", err)
		}
	}
	var foreign []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil || r.Type != unix.RTN_UNICAST {
			continue
		}
		ip, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		dst := netip.PrefixFrom(ip.Unmap(), bits)
		if !d.network.Overlaps(dst) || dst.Bits() < d.network.Bits() {
			continue
		}
		if r.LinkIndex != d.Index {
			foreign = append(foreign, dst)
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		s.Routes = append(s.Routes, Route{Dst: dst, Gw: gw.Unmap()})
	}
	return s, foreign, nil
}

func ignoreMissing(err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// SetNeigh implements Kernel.
func (d *Device) SetNeigh(n Neigh) error {
	return d.h.NeighSet(&netlink.Neigh{LinkIndex: d.Index, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
		IP: n.IP.AsSlice(), HardwareAddr: n.MAC.HardwareAddr()})
}

// DelNeigh implements Kernel.
func (d *Device) DelNeigh(n Neigh) error {
	return ignoreMissing(d.h.NeighDel(&netlink.Neigh{LinkIndex: d.Index, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
		IP: n.IP.AsSlice(), HardwareAddr: n.MAC.HardwareAddr()}))
}

// SetFDB implements Kernel.
func (d *Device) SetFDB(f FDB) error {
	return d.h.NeighSet(&netlink.Neigh{LinkIndex: d.Index, State: netlink.NUD_PERMANENT, Family: unix.AF_BRIDGE,
		Flags: netlink.NTF_SELF, IP: f.Dst.AsSlice(), HardwareAddr: f.MAC.HardwareAddr()})
}

// DelFDB implements Kernel.
func (d *Device) DelFDB(f FDB) error {
	return ignoreMissing(d.h.NeighDel(&netlink.Neigh{LinkIndex: d.Index, Family: unix.AF_BRIDGE,
		Flags: netlink.NTF_SELF, IP: f.Dst.AsSlice(), HardwareAddr: f.MAC.HardwareAddr()}))
}

func (d *Device) route(r Route) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: d.Index,
		Scope:     netlink.SCOPE_UNIVERSE,
		Dst:       &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), d.bits())},
		Gw:        r.Gw.AsSlice(),
		Table:     unix.RT_TABLE_MAIN,
	}
	nr.SetFlag(netlink.FLAG_ONLINK)
	return nr
}

// SetRoute implements Kernel.
func (d *Device) SetRoute(r Route) error { return d.h.RouteReplace(d.route(r)) }

// DelRoute implements Kernel.
func (d *Device) DelRoute(r Route) error { return ignoreMissing(d.h.RouteDel(d.route(r))) }
