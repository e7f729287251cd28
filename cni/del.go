package cni

import (
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
)

// Del detaches the container. It is idempotent and works without CNI_NETNS,
// with a namespace that is gone, and after a crashed ADD: whatever is left
// (the veth pair, masquerading rules, address) is removed.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	store, err := OpenLockedStore(conf.DataDir)
	if err != nil {
		return internalError("%v", err)
	}
	defer store.Close()

	att := Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	addrs, err := store.Lookup(att)
	if err != nil {
		return internalError("%v", err)
	}
	p.registerDel(conf, args, addrs)
	// The host end alone: a veth pair goes as one, so the container's
	// interface goes with it wherever it is, and CNI_NETNS is never
	// searched for CNI_IFNAME (a namespace named by mistake, another
	// container's, keeps its interface of that name).
	if err := deleteLinkIfPresent(HostVethName(args.ContainerID, args.IfName)); err != nil {
		return internalError("%v", err)
	}
	// Rules are looked for whatever the options say now: they may have
	// been set under another config or WEFT_IPMASQ value.
	if err := teardownMasq(conf.Name, masqNetsOf(conf, addrs), args.ContainerID, args.IfName); err != nil {
		return internalError("%v", err)
	}
	if _, err := store.Release(att); err != nil {
		return internalError("%v", err)
	}
	p.log().Debug("released", "addrs", addrs, "container", att.ContainerID, "ifname", att.IfName)
	return nil
}

// masqNetsOf is masqNet of each address with its family's overlay network
// from the subnet file, or a host prefix (/32, /128) when the file cannot
// be read or lacks the family (DEL must work without weftd).
func masqNetsOf(conf *NetConf, addrs []netip.Addr) []*net.IPNet {
	env, err := readSubnetEnv(conf.SubnetFile)
	nets := make([]*net.IPNet, 0, len(addrs))
	for _, a := range addrs {
		bits := a.BitLen()
		switch {
		case err != nil:
		case a.Is4() && env.HasIPv4():
			bits = env.Network.Bits()
		case a.Is6() && env.HasIPv6():
			bits = env.IPv6Network.Bits()
		}
		nets = append(nets, masqNet(a, bits))
	}
	return nets
}
