package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// containerRoutes lists the routes a container gets: the whole overlay
// network via the gateway (always, as flannel does, so that the overlay
// stays reachable when another network holds the default route), the
// default route via the gateway when isDefaultGateway, then the configured
// routes, whose missing gw is the gateway.
func containerRoutes(conf *NetConf, env subnetfile.Env) []*types.Route {
	gw := net.IP(env.Subnet.Addr().AsSlice())
	routes := []*types.Route{{Dst: *prefixToIPNet(env.Network), GW: gw}}
	if conf.IsDefaultGateway {
		routes = append(routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw})
	}
	for _, r := range conf.Routes {
		route := r.Copy()
		if route.GW == nil {
			route.GW = gw
		}
		routes = append(routes, route)
	}
	return routes
}

// addRoutes installs routes on link (call in the container namespace) and
// returns those it installed: a route whose destination another interface
// already routes (a default route of an earlier network) is left to it and
// not reported in the result.
func addRoutes(link netlink.Link, routes []*types.Route) ([]*types.Route, error) {
	var added []*types.Route
	for _, r := range routes {
		dst := r.Dst
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &dst, Gw: r.GW}
		err := netlink.RouteAdd(route)
		if errors.Is(err, syscall.EEXIST) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("add route %s via %s: %w", r.Dst.String(), r.GW, err)
		}
		added = append(added, r)
	}
	return added, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Masked().Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addrToIPNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}
