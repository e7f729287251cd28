package cni

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
)

// Del detaches the container. It is idempotent and works without CNI_NETNS,
// with a namespace that is gone, and after a crashed ADD: whatever is left
// (container interface, host veth, masquerading rules, address) is removed.
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
	if args.Netns != "" {
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error { return deleteLinkIfPresent(args.IfName) })
		if err != nil && !isMissingNetNS(err) {
			return internalError("remove %s from %s: %v", args.IfName, args.Netns, err)
		}
	}
	if err := deleteLinkIfPresent(HostVethName(args.ContainerID, args.IfName)); err != nil {
		return internalError("%v", err)
	}
	// Rules are looked for whatever the options say now: they may have
	// been set under another config or WEFT_IPMASQ value.
	if err := teardownMasq(conf.Name, addrs, networkBitsOr(conf, 32), args.ContainerID, args.IfName); err != nil {
		return internalError("%v", err)
	}
	if _, err := store.Release(att); err != nil {
		return internalError("%v", err)
	}
	p.log().Debug("released", "addrs", addrs, "container", att.ContainerID, "ifname", att.IfName)
	return nil
}

// isMissingNetNS tells whether a namespace path is gone or no longer a
// namespace (e.g. the runtime already unmounted it).
func isMissingNetNS(err error) bool {
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	return errors.As(err, &notExist) || errors.As(err, &notNS)
}

// networkBitsOr is the overlay network's prefix length from the subnet
// file, or def when the file cannot be read (DEL must work without weftd).
func networkBitsOr(conf *NetConf, def int) int {
	env, err := readSubnetEnv(conf.SubnetFile)
	if err != nil {
		return def
	}
	return env.Network.Bits()
}
