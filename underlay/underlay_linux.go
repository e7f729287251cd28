// Package underlay finds the interface and addresses other nodes reach
// this one on: --iface (a name or an address), --public-ip and
// --public-ipv6, or the interface of the default route (IPv4, else IPv6).
package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Underlay is the interface and addresses other nodes reach this one on.
type Underlay struct {
	Name  string
	Index int
	// PublicIP is the IPv4 address published in the lease (invalid on an
	// IPv6-only underlay); PublicIPv6 the IPv6 one (invalid when none).
	PublicIP   netip.Addr
	PublicIPv6 netip.Addr
	MTU        int
	// Prefixes are the interface's networks (address and mask) of both
	// families, link-local ones aside.
	Prefixes []netip.Prefix
}

// Options say what to look for.
type Options struct {
	// Iface is --iface: an interface name or one of its addresses; ""
	// picks the interface of the default route.
	Iface string
	// PublicIP and PublicIPv6 are --public-ip and --public-ipv6 ("":
	// the interface's first global address of the family).
	PublicIP, PublicIPv6 string
	// WantIPv6 looks for an IPv6 address when PublicIPv6 is "" (the
	// network has IPv6). Without an IPv4 address an IPv6 one is looked
	// for anyway: an IPv6-only underlay.
	WantIPv6 bool
}

// ErrConfig marks errors the operator must fix (a flag, the host's
// addresses); weftd exits 78 on them.
var ErrConfig = errors.New("configuration")

type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrConfig} }

func configErrorf(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }

// Find returns the underlay for an IPv4 underlay: FindWith with iface and
// publicIP.
func Find(iface, publicIP string) (Underlay, error) {
	return FindWith(Options{Iface: iface, PublicIP: publicIP})
}

// FindWith returns the underlay interface, its addresses and MTU. The
// underlay has at least one public address: PublicIP (IPv4) unless the
// interface has none and none is given, PublicIPv6 when given, wanted
// (the network has IPv6) or needed (no IPv4 address).
func FindWith(o Options) (Underlay, error) {
	explicit4, explicit6, err := parseExplicit(o)
	if err != nil {
		return Underlay{}, err
	}
	link, err := underlayLink(o.Iface, explicit4, explicit6)
	if err != nil {
		return Underlay{}, err
	}
	u := Underlay{Name: link.Attrs().Name, Index: link.Attrs().Index, MTU: link.Attrs().MTU}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return Underlay{}, fmt.Errorf("addresses of %s: %w", u.Name, err)
	}
	var first4, first6 netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, _ := a.Mask.Size()
		if !ip.IsLinkLocalUnicast() {
			u.Prefixes = append(u.Prefixes, netip.PrefixFrom(ip, ones).Masked())
		}
		switch {
		case !ip.IsGlobalUnicast():
		case ip.Is4() && !first4.IsValid():
			first4 = ip
		case ip.Is6() && !first6.IsValid() && a.Flags&(unix.IFA_F_DADFAILED|unix.IFA_F_DEPRECATED) == 0:
			first6 = ip
		}
	}
	u.PublicIP, u.PublicIPv6 = explicit4, explicit6
	if !u.PublicIP.IsValid() {
		u.PublicIP = first4
	}
	if !u.PublicIPv6.IsValid() && (o.WantIPv6 || !u.PublicIP.IsValid()) {
		u.PublicIPv6 = first6
	}
	if !u.PublicIP.IsValid() && !u.PublicIPv6.IsValid() {
		return Underlay{}, fmt.Errorf("interface %s has no usable IPv4 or IPv6 address; set --public-ip or --public-ipv6", u.Name)
	}
	overhead := 28 + 8
	if !u.PublicIP.IsValid() {
		overhead = 48 + 8
	}
	if u.MTU < 576+overhead {
		return Underlay{}, fmt.Errorf("interface %s MTU %d is too small for an overlay", u.Name, u.MTU)
	}
	return u, nil
}

// parseExplicit checks --public-ip and --public-ipv6.
func parseExplicit(o Options) (v4, v6 netip.Addr, err error) {
	if o.PublicIP != "" {
		ip, err := netip.ParseAddr(o.PublicIP)
		if err != nil || !ip.Is4() {
			return v4, v6, configErrorf("--public-ip %q: not an IPv4 address (an IPv6 one goes in --public-ipv6)", o.PublicIP)
		}
		v4 = ip
	}
	if o.PublicIPv6 != "" {
		ip, err := netip.ParseAddr(o.PublicIPv6)
		if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
			return v4, v6, configErrorf("--public-ipv6 %q: not an IPv6 address", o.PublicIPv6)
		}
		if !ip.IsGlobalUnicast() {
			return v4, v6, configErrorf("--public-ipv6 %s: not a global unicast address other nodes can reach (link-local, loopback and multicast are refused)", ip)
		}
		v6 = ip
	}
	return v4, v6, nil
}

func underlayLink(iface string, publicIP, publicIPv6 netip.Addr) (netlink.Link, error) {
	if iface != "" {
		if ip, err := netip.ParseAddr(iface); err == nil {
			return linkWithAddr(ip)
		}
		link, err := netlink.LinkByName(iface)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, configErrorf("--iface %s: no such interface in this network namespace", iface)
		}
		if err != nil {
			return nil, fmt.Errorf("--iface %s: %w", iface, err)
		}
		return link, nil
	}
	for _, ip := range []netip.Addr{publicIP, publicIPv6} {
		if ip.IsValid() {
			if link, err := linkWithAddr(ip); err == nil {
				return link, nil
			}
		}
	}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, family)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask)) && r.LinkIndex > 0 {
				link, err := netlink.LinkByIndex(r.LinkIndex)
				if err != nil {
					return nil, fmt.Errorf("default route interface: %w", err)
				}
				return link, nil
			}
		}
	}
	return nil, configErrorf("no default route (IPv4 or IPv6) to pick the underlay interface from: " +
		"set --iface (WEFTD_IFACE) to the interface or address other nodes reach this one on")
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func linkWithAddr(ip netip.Addr) (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(net.IP(ip.AsSlice())) {
				return l, nil
			}
		}
	}
	return nil, configErrorf("no interface has address %s (--iface, --public-ip or --public-ipv6)", ip)
}
