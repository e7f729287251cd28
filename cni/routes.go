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

// containerRoutes lists the routes a container gets: default (or only the
// overlay network) via the gateway, then the configured routes, whose
// missing gw is the gateway.
func containerRoutes(conf *NetConf, env subnetfile.Env) []*types.Route {
	gw := net.IP(env.Subnet.Addr().AsSlice())
	var routes []*types.Route
	if conf.IsDefaultGateway {
		routes = append(routes, &types.Route{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw})
	} else {
		routes = append(routes, &types.Route{Dst: *prefixToIPNet(env.Network), GW: gw})
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

// addRoutes installs routes on link (call in the container namespace).
func addRoutes(link netlink.Link, routes []*types.Route) error {
	for _, r := range routes {
		dst := r.Dst
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &dst, Gw: r.GW}
		if err := netlink.RouteAdd(route); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add route %s via %s: %w", r.Dst.String(), r.GW, err)
		}
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Masked().Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addrToIPNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(bits, a.BitLen())}
}
