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

// OnLinkPrefixes returns the connected IPv4 prefixes of the underlay
// interface (its addresses with their prefix lengths, masked).
func (k *Kernel) OnLinkPrefixes() ([]netip.Prefix, error) {
	link, err := k.h.LinkByIndex(k.link)
	if err != nil {
		return nil, fmt.Errorf("routing: underlay %s: %w", k.dev, err)
	}
	addrs, err := k.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("routing: addresses of %s: %w", k.dev, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
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
// the add.
func (k *Kernel) Sync(want []Route) (Changes, error) {
	var c Changes
	for _, r := range want {
		if !r.Subnet.Addr().Is4() || !r.Gateway.Is4() || (r.Source.IsValid() && !r.Source.Is4()) {
			return c, fmt.Errorf("routing: %v: want an IPv4 subnet, gateway and source", r)
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
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Subnet.Addr().AsSlice(), Mask: net.CIDRMask(r.Subnet.Bits(), 32)},
		Protocol: Protocol,
		Table:    unix.RT_TABLE_MAIN,
		Family:   netlink.FAMILY_V4,
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

// list reads the main table: weft's routes, and the destinations of the
// others. A dump interrupted by a concurrent change is read again.
func (k *Kernel) list() (owned []Route, foreign []netip.Prefix, err error) {
	var routes []netlink.Route
	for attempt := 0; ; attempt++ {
		routes, err = k.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err == nil {
			break
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == 4 {
			return nil, nil, fmt.Errorf("routing: list routes: %w", err)
		}
	}
	for _, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
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
