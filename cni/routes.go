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

// containerRoutes lists the routes a container gets, for each family of
// the node's network (IPv4 first): the whole overlay network via the
// family's gateway (always, as flannel does, so that the overlay stays
// reachable when another network holds the default route), the default
// route via the gateway when isDefaultGateway; then the configured routes,
// whose missing gw is the gateway of their family. A configured route of a
// family the network lacks is an error: nothing could carry it.
func containerRoutes(conf *NetConf, env subnetfile.Env) ([]*types.Route, error) {
	var routes []*types.Route
	gws := map[bool]net.IP{}
	for _, f := range []struct{ network, subnet netip.Prefix }{{env.Network, env.Subnet}, {env.IPv6Network, env.IPv6Subnet}} {
		if !f.subnet.IsValid() {
			continue
		}
		gw := net.IP(f.subnet.Addr().AsSlice())
		gws[f.subnet.Addr().Is6()] = gw
		routes = append(routes, &types.Route{Dst: *prefixToIPNet(f.network), GW: gw})
		if conf.IsDefaultGateway {
			def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if f.subnet.Addr().Is6() {
				def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			routes = append(routes, &types.Route{Dst: *prefixToIPNet(def), GW: gw})
		}
	}
	for i, r := range conf.Routes {
		route := r.Copy()
		ipv6 := route.Dst.IP.To4() == nil
		gw, ok := gws[ipv6]
		if !ok {
			return nil, invalidConfig(fmt.Sprintf("routes[%d]", i), fmt.Sprintf("%s is an %s route but this node's network has no %s (subnet file %s)",
				route.Dst.String(), familyName(ipv6), familyName(ipv6), conf.SubnetFile))
		}
		if route.GW == nil {
			route.GW = gw
		}
		routes = append(routes, route)
	}
	return routes, nil
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
