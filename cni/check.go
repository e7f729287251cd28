package cni

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// Check verifies the attachment against prevResult and the subnet file:
// an address of each family of the node's network, inside the node's
// subnet of that family; the allocations on disk; the container interface
// (MAC, addresses, routes of both families); its veth peer on the host,
// that peer's place on the bridge and the bridge's gateway addresses.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	if err := refuseNodeNetNS(args); err != nil {
		return err
	}
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if conf.PrevResult == nil {
		return invalidConfig("prevResult", "required for CHECK")
	}
	result, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return invalidConfig("prevResult", err.Error())
	}
	env, err := readSubnetEnv(conf.SubnetFile)
	if err != nil {
		return err
	}
	exp, err := expectedFromResult(result, args)
	if err != nil {
		return internalError("check: %v", err)
	}
	if err := checkFamilies(env, exp.ips); err != nil {
		return internalError("check: %v", err)
	}
	if err := p.checkAllocation(conf, args, exp.ips); err != nil {
		return internalError("check: %v", err)
	}
	ctrNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("cannot open CNI_NETNS %q", args.Netns), err.Error())
	}
	defer ctrNS.Close()
	var peerIndex int
	err = ctrNS.Do(func(ns.NetNS) error {
		var err error
		peerIndex, err = checkContainerSide(args.IfName, exp)
		return err
	})
	if err != nil {
		return internalError("check container side: %v", err)
	}
	if err := checkHostSide(conf.Bridge, peerIndex, HostVethName(args.ContainerID, args.IfName), env); err != nil {
		return internalError("check host side: %v", err)
	}
	return nil
}

// expectation is the part of prevResult that concerns this attachment.
type expectation struct {
	mac    string
	ips    []*current.IPConfig
	routes []*types.Route
}

func expectedFromResult(result *current.Result, args *skel.CmdArgs) (expectation, error) {
	idx := slices.IndexFunc(result.Interfaces, func(i *current.Interface) bool {
		return i.Name == args.IfName && i.Sandbox != ""
	})
	if idx < 0 {
		return expectation{}, fmt.Errorf("prevResult has no container interface %s", args.IfName)
	}
	exp := expectation{mac: result.Interfaces[idx].Mac, routes: result.Routes}
	for _, ipc := range result.IPs {
		if ipc.Interface != nil && *ipc.Interface == idx {
			exp.ips = append(exp.ips, ipc)
		}
	}
	if len(exp.ips) == 0 {
		return expectation{}, fmt.Errorf("prevResult has no address for %s", args.IfName)
	}
	return exp, nil
}

// checkFamilies wants, for each family of the node's network, one address
// of the container inside the node's subnet of that family, and no address
// of a family the network lacks: a container attached before the network
// gained IPv6, or whose node was renumbered, is reported, not passed.
func checkFamilies(env subnetfile.Env, ips []*current.IPConfig) error {
	have := map[bool]netip.Addr{}
	for _, ipc := range ips {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return fmt.Errorf("prevResult address %q is not an IP address", ipc.Address.IP)
		}
		a = a.Unmap()
		subnet := env.Subnet
		if a.Is6() {
			subnet = env.IPv6Subnet
		}
		if !subnet.IsValid() {
			return fmt.Errorf("the container has %s address %s but this node's network has no %s", familyName(a.Is6()), a, familyName(a.Is6()))
		}
		if !subnet.Masked().Contains(a) {
			return fmt.Errorf("the container's address %s is outside this node's subnet %s", a, subnet.Masked())
		}
		have[a.Is6()] = a
	}
	for _, f := range []struct {
		ipv6   bool
		subnet netip.Prefix
	}{{false, env.Subnet}, {true, env.IPv6Subnet}} {
		if _, ok := have[f.ipv6]; f.subnet.IsValid() && !ok {
			return fmt.Errorf("the container has no %s address but this node's network has %s (subnet %s): re-create it",
				familyName(f.ipv6), familyName(f.ipv6), f.subnet.Masked())
		}
	}
	return nil
}

func (p *Plugin) checkAllocation(conf *NetConf, args *skel.CmdArgs, ips []*current.IPConfig) error {
	store, err := OpenLockedStore(conf.DataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	held, err := store.Lookup(Attachment{ContainerID: args.ContainerID, IfName: args.IfName})
	if err != nil {
		return err
	}
	for _, ipc := range ips {
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok || !slices.Contains(held, addr.Unmap()) {
			return fmt.Errorf("address %s is not allocated to %s/%s in %s", ipc.Address.IP, args.ContainerID, args.IfName, conf.DataDir)
		}
	}
	return nil
}

// checkContainerSide runs in the container namespace and returns the host
// index of the veth peer.
func checkContainerSide(ifname string, exp expectation) (int, error) {
	link, peerIndex, err := ip.GetVethPeerIfindex(ifname)
	if err != nil {
		return 0, err
	}
	if exp.mac != "" && link.Attrs().HardwareAddr.String() != exp.mac {
		return 0, fmt.Errorf("%s has MAC %s, prevResult says %s", ifname, link.Attrs().HardwareAddr, exp.mac)
	}
	if err := ip.ValidateExpectedInterfaceIPs(ifname, exp.ips); err != nil {
		return 0, err
	}
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("list routes of %s: %w", ifname, err)
	}
	for _, want := range exp.routes {
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return routeMatches(r, want) }) {
			return 0, fmt.Errorf("route %s via %s missing on %s", want.Dst.String(), want.GW, ifname)
		}
	}
	return peerIndex, nil
}

func routeMatches(r netlink.Route, want *types.Route) bool {
	dst := "0.0.0.0/0"
	if r.Family == netlink.FAMILY_V6 {
		dst = "::/0"
	}
	if r.Dst != nil {
		dst = r.Dst.String()
	}
	wantDst := (&net.IPNet{IP: want.Dst.IP.Mask(want.Dst.Mask), Mask: want.Dst.Mask}).String()
	if dst != wantDst {
		return false
	}
	return want.GW == nil || want.GW.Equal(r.Gw)
}

// checkHostSide verifies that the peer is the expected host veth and sits
// on the bridge, and that the bridge holds the gateway of each family.
func checkHostSide(bridge string, peerIndex int, hostName string, env subnetfile.Env) error {
	peer, err := netlink.LinkByIndex(peerIndex)
	if err != nil {
		return fmt.Errorf("veth peer index %d: %w", peerIndex, err)
	}
	if peer.Attrs().Name != hostName {
		return fmt.Errorf("veth peer is %s, expected %s", peer.Attrs().Name, hostName)
	}
	br, err := bridgeByName(bridge)
	if err != nil {
		return err
	}
	if peer.Attrs().MasterIndex != br.Index {
		return fmt.Errorf("%s is not attached to bridge %s", hostName, bridge)
	}
	addrs, err := netlinksafe.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of bridge %s: %w", bridge, err)
	}
	for _, gw := range []netip.Prefix{env.Subnet, env.IPv6Subnet} {
		if !gw.IsValid() {
			continue
		}
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			ip, _ := netip.AddrFromSlice(a.IP)
			bits, _ := a.Mask.Size()
			return ip.Unmap() == gw.Addr() && bits == gw.Bits()
		}) {
			return fmt.Errorf("bridge %s does not hold the gateway %s", bridge, gw)
		}
	}
	return nil
}
