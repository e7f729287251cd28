// Package underlay finds the interface and address other nodes reach this
// one on: --iface (a name or an address), --public-ip, or the interface of
// the IPv4 default route.
package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Underlay is the interface and address other nodes reach this one on.
type Underlay struct {
	Name     string
	Index    int
	PublicIP netip.Addr
	MTU      int
	// Prefixes are the interface's IPv4 networks (address and mask).
	Prefixes []netip.Prefix
}

// ErrConfig is wrapped by Find's errors that only a change of
// configuration can fix.
var ErrConfig = errors.New("configuration")

// configError is such an error; its message is the wrapped one's.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrConfig} }

func configErrorf(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }

// Find resolves --iface (a name or an address; empty means the
// interface of the IPv4 default route) and --public-ip (empty means the
// interface's first IPv4 address). What only a change of configuration
// can fix (no default route and no --iface, an --iface or --public-ip that
// names nothing here) wraps ErrConfig: weftd exits 78 and systemd does
// not restart it forever (weftd.service starts after network-online).
func Find(iface, publicIP string) (Underlay, error) {
	link, err := underlayLink(iface, publicIP)
	if err != nil {
		return Underlay{}, err
	}
	u := Underlay{Name: link.Attrs().Name, Index: link.Attrs().Index, MTU: link.Attrs().MTU}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return Underlay{}, fmt.Errorf("addresses of %s: %w", u.Name, err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ones, _ := a.Mask.Size()
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			u.Prefixes = append(u.Prefixes, netip.PrefixFrom(ip.Unmap(), ones).Masked())
		}
	}
	if publicIP != "" {
		ip, err := netip.ParseAddr(publicIP)
		if err != nil || !ip.Is4() {
			return Underlay{}, configErrorf("--public-ip %q: not an IPv4 address", publicIP)
		}
		u.PublicIP = ip
	} else {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				u.PublicIP = ip.Unmap()
				break
			}
		}
		if !u.PublicIP.IsValid() {
			return Underlay{}, fmt.Errorf("interface %s has no usable IPv4 address; set --public-ip", u.Name)
		}
	}
	if u.MTU < 576+28+8 {
		return Underlay{}, fmt.Errorf("interface %s MTU %d is too small for an overlay", u.Name, u.MTU)
	}
	return u, nil
}

func underlayLink(iface, publicIP string) (netlink.Link, error) {
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
	if publicIP != "" {
		if ip, err := netip.ParseAddr(publicIP); err == nil {
			if link, err := linkWithAddr(ip); err == nil {
				return link, nil
			}
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.LinkIndex > 0 {
			link, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("default route interface: %w", err)
			}
			return link, nil
		}
	}
	return nil, configErrorf("no IPv4 default route to pick the underlay interface from: " +
		"set --iface (WEFTD_IFACE) to the interface or address other nodes reach this one on")
}

func linkWithAddr(ip netip.Addr) (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	for _, l := range links {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(net.IP(ip.AsSlice())) {
				return l, nil
			}
		}
	}
	return nil, configErrorf("no interface has address %s (--iface or --public-ip)", ip)
}
