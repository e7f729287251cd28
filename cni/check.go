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
)

// Check verifies the attachment against prevResult: the allocation on
// disk, the container interface (MAC, addresses, routes), its veth peer on
// the host and that peer's place on the bridge.
func (p *Plugin) Check(args *skel.CmdArgs) error {
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
	if _, err := readSubnetEnv(conf.SubnetFile); err != nil {
		return err
	}
	exp, err := expectedFromResult(result, args)
	if err != nil {
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
	if err := checkHostSide(conf.Bridge, peerIndex, HostVethName(args.ContainerID, args.IfName)); err != nil {
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
		addr, ok := netip.AddrFromSlice(ipc.Address.IP.To4())
		if !ok || !slices.Contains(held, addr) {
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
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_V4)
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
// on the bridge.
func checkHostSide(bridge string, peerIndex int, hostName string) error {
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
	return nil
}
