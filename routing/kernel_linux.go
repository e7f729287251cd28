package routing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Kernel keeps weft's routes in the main table of one network namespace,
// all through one underlay interface.
type Kernel struct {
	h    *netlink.Handle
	dev  string
	link int
	mu   sync.Mutex // one Sync at a time
}

// NewKernel manages weft's routes through the underlay device dev, using h
// (a netlink handle of the namespace to work in).
func NewKernel(h *netlink.Handle, dev string) (*Kernel, error) {
	link, err := h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("routing: underlay %s: %w", dev, err)
	}
	return &Kernel{h: h, dev: dev, link: link.Attrs().Index}, nil
}

// OnLinkPrefixes returns the connected prefixes of the underlay interface
// (its IPv4 and global IPv6 addresses with their prefix lengths, masked;
// not IPv6 link-local ones).
func (k *Kernel) OnLinkPrefixes() ([]netip.Prefix, error) {
	link, err := k.h.LinkByIndex(k.link)
	if err != nil {
		return nil, fmt.Errorf("routing: underlay %s: %w", k.dev, err)
	}
	addrs, err := k.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("routing: addresses of %s: %w", k.dev, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil || ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits).Masked())
	}
	return out, nil
}

// Sync makes weft's routes in the main table exactly want: weft's routes
// that are not wanted (a peer left, a stale one from an earlier run) are
// deleted, missing ones are added (also ones someone deleted, or the
// kernel dropped with the underlay going down). A wanted destination that
// already has a route weft did not create is left alone and reported as
// blocked; so is one whose route someone adds between the listing and
// the add. Routes of both families are kept (an IPv6 subnet via an IPv6
// gateway); each route's subnet, gateway and source are of one family.
func (k *Kernel) Sync(want []Route) (Changes, error) {
	var c Changes
	for _, r := range want {
		v4 := r.Subnet.Addr().Is4()
		if !r.Subnet.IsValid() || r.Subnet.Addr().Is4In6() || !r.Gateway.IsValid() || r.Gateway.Is4() != v4 ||
			r.Gateway.Is4In6() || (r.Source.IsValid() && r.Source.Is4() != v4) {
			return c, fmt.Errorf("routing: %v: want a subnet, gateway and source of one family", r)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	owned, foreign, err := k.list()
	if err != nil {
		return c, err
	}
	del, add, blocked := plan(want, owned, foreign)
	c.Blocked = blocked
	var errs []error
	for _, p := range del {
		err := k.h.RouteDel(k.route(Route{Subnet: p}))
		switch {
		case err == nil:
			c.Deleted = append(c.Deleted, p)
		case !errors.Is(err, syscall.ESRCH):
			errs = append(errs, fmt.Errorf("routing: delete %v: %w", p, err))
		}
	}
	for _, r := range add {
		err := k.h.RouteAdd(k.route(r))
		switch {
		case err == nil:
			c.Added = append(c.Added, r)
		case errors.Is(err, syscall.EEXIST):
			c.Blocked = append(c.Blocked, r)
		default:
			errs = append(errs, fmt.Errorf("routing: add %v dev %s: %w", r, k.dev, err))
		}
	}
	return c, errors.Join(errs...)
}

// Owned lists weft's routes in the main table.
func (k *Kernel) Owned() ([]Route, error) {
	owned, _, err := k.list()
	return owned, err
}

// route is the netlink form of one of weft's routes. Deletion passes the
// protocol too, and the kernel then matches only routes with it.
func (k *Kernel) route(r Route) *netlink.Route {
	bits, family := 32, netlink.FAMILY_V4
	if !r.Subnet.Addr().Is4() {
		bits, family = 128, netlink.FAMILY_V6
	}
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Subnet.Addr().AsSlice(), Mask: net.CIDRMask(r.Subnet.Bits(), bits)},
		Protocol: Protocol,
		Table:    unix.RT_TABLE_MAIN,
		Family:   family,
	}
	if r.Gateway.IsValid() {
		nr.LinkIndex = k.link
		nr.Gw = r.Gateway.AsSlice()
	}
	if r.Source.IsValid() {
		nr.Src = r.Source.AsSlice()
	}
	return nr
}

// list reads the main table of both families: weft's routes, and the
// destinations of the others. A dump interrupted by a concurrent change is
// read again.
func (k *Kernel) list() (owned []Route, foreign []netip.Prefix, err error) {
	var all []netlink.Route
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var routes []netlink.Route
		for attempt := 0; ; attempt++ {
			routes, err = k.h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
			if err == nil {
				break
			}
			if family == netlink.FAMILY_V6 && errors.Is(err, syscall.EAFNOSUPPORT) {
				break // a kernel without IPv6
			}
			if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 4 {
				return nil, nil, fmt.Errorf("routing: list routes: %w", err)
			}
		}
		all = append(all, routes...)
	}
	for _, r := range all {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Family == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			ip, _ := netip.AddrFromSlice(r.Dst.IP)
			bits, _ := r.Dst.Mask.Size()
			dst = netip.PrefixFrom(ip.Unmap(), bits)
		}
		if r.Protocol != Protocol {
			foreign = append(foreign, dst)
			continue
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		src, _ := netip.AddrFromSlice(r.Src)
		owned = append(owned, Route{Subnet: dst, Gateway: gw.Unmap(), Source: src.Unmap()})
	}
	return owned, foreign, nil
}
