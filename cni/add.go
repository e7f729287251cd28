package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Add attaches the container: an address from the node subnet, a veth
// pair with the container end in CNI_NETNS, the host end on the bridge,
// routes, and optionally masquerading. On failure it undoes its work.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	req, err := requestedAddress(conf, args.Args)
	if err != nil {
		return err
	}
	env, err := readSubnetEnv(conf.SubnetFile)
	if err != nil {
		return err
	}
	if err := req.checkPrefixLength(env.Subnet); err != nil {
		return err
	}
	if err := checkSubnetFree(env.Subnet, conf.Bridge); err != nil {
		return err
	}
	wl, err := workloadOf(conf, args.Args)
	if err != nil {
		return err
	}
	pool, err := NewPool(env.Subnet)
	if err != nil {
		return internalError("node subnet from %s: %v", conf.SubnetFile, err)
	}
	ctrNS, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("cannot open CNI_NETNS %q", args.Netns), err.Error())
	}
	defer ctrNS.Close()

	store, err := OpenLockedStore(conf.DataDir)
	if err != nil {
		return internalError("%v", err)
	}
	defer store.Close()

	att := Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	held, err := store.Lookup(att)
	if err != nil {
		return internalError("%v", err)
	}
	if len(held) > 0 {
		return internalError("container %s interface %s already exists (it holds %s); DEL it first", att.ContainerID, att.IfName, held[0])
	}
	addr, err := allocateFor(store, att, pool, req)
	if err != nil {
		return err
	}
	p.log().Debug("allocated", "addr", addr, "container", att.ContainerID, "ifname", att.IfName)

	a := attachment{conf: conf, args: args, addr: netip.PrefixFrom(addr, env.Subnet.Bits()), gateway: env.Subnet.Addr(),
		networkBits: env.Network.Bits(), mtu: env.MTU, mac: req.MAC, ctrNS: ctrNS, masq: conf.masqEnabled(env)}
	a.routes = containerRoutes(conf, env)
	res, err := a.create()
	if err == nil {
		err = registerAdd(conf, args, wl, addr)
	}
	if err != nil {
		if rerr := a.rollback(); rerr != nil {
			p.log().Warn("rollback after failed ADD", "err", rerr)
		}
		if _, rerr := store.Release(att); rerr != nil {
			p.log().Warn("release address after failed ADD", "err", rerr)
		}
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			return cniErr
		}
		return internalError("%v", err)
	}
	result, err := buildResult(res, conf.PrevResult)
	if err != nil {
		return internalError("%v", err)
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// attachment carries what ADD needs to create (and roll back) one
// container interface.
type attachment struct {
	conf        *NetConf
	args        *skel.CmdArgs
	addr        netip.Prefix
	gateway     netip.Addr
	networkBits int
	mtu         int
	mac         net.HardwareAddr // nil: the kernel's choice
	routes      []*types.Route
	ctrNS       ns.NetNS
	masq        bool

	createdVeth bool
	masqSet     bool
}

func (a *attachment) hostName() string { return HostVethName(a.args.ContainerID, a.args.IfName) }

func (a *attachment) create() (attachmentResult, error) {
	var res attachmentResult
	if err := ip.EnableIP4Forward(); err != nil {
		return res, fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	gw := netip.PrefixFrom(a.gateway, a.addr.Bits())
	br, err := ensureBridge(a.conf.Bridge, gw, a.mtu)
	if err != nil {
		return res, err
	}
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return res, fmt.Errorf("open host namespace: %w", err)
	}
	defer hostNS.Close()

	var pair vethPair
	err = a.ctrNS.Do(func(ns.NetNS) error {
		pair, err = createVeth(a.args.IfName, a.hostName(), a.mtu, a.mac, hostNS)
		if err != nil {
			return err
		}
		a.createdVeth = true
		a.routes, err = configureContainerSide(a.args.IfName, a.addr, a.routes)
		return err
	})
	if err != nil {
		return res, err
	}
	if _, err := attachToBridge(a.hostName(), br, a.conf.HairpinMode); err != nil {
		return res, err
	}
	if a.masq {
		a.masqSet = true
		if err := setupMasq(a.conf.Name, a.addr.Addr(), a.networkBits, a.args.ContainerID, a.args.IfName); err != nil {
			return res, err
		}
	}
	// The bridge's MAC may change as ports join: read it last.
	br, err = bridgeByName(a.conf.Bridge)
	if err != nil {
		return res, err
	}
	return attachmentResult{
		bridgeName: br.Name, bridgeMAC: br.HardwareAddr.String(),
		hostName: pair.host.Name, hostMAC: pair.host.HardwareAddr.String(),
		ctrName: pair.container.Name, ctrMAC: pair.container.HardwareAddr.String(),
		sandbox: a.args.Netns, addr: a.addr, gateway: a.gateway,
		routes: a.routes, dns: a.conf.DNS,
	}, nil
}

// configureContainerSide assigns the address and routes (call in the
// container namespace) and returns the routes it installed.
func configureContainerSide(ifname string, addr netip.Prefix, routes []*types.Route) ([]*types.Route, error) {
	link, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: addrToIPNet(addr.Addr(), addr.Bits())}); err != nil {
		return nil, fmt.Errorf("add %s to %s: %w", addr, ifname, err)
	}
	return addRoutes(link, routes)
}

// allocateFor reserves the requested static address, or any free one.
func allocateFor(store *Store, att Attachment, pool Pool, req addressRequest) (netip.Addr, error) {
	if req.IP.IsValid() {
		err := store.AllocateAddr(att, req.IP, pool)
		if errors.Is(err, ErrAddressTaken) {
			return netip.Addr{}, internalError("static address from %s: %v", req.IPFrom, err)
		}
		if err != nil {
			return netip.Addr{}, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("static address from %s: %v", req.IPFrom, err), "")
		}
		return req.IP, nil
	}
	addr, err := store.Allocate(att, pool)
	if errors.Is(err, ErrPoolExhausted) {
		return netip.Addr{}, internalError("cannot allocate an address for container %s: %v", att.ContainerID, err)
	}
	if err != nil {
		return netip.Addr{}, internalError("allocate address: %v", err)
	}
	return addr, nil
}

// rollback undoes what create did, and only that.
func (a *attachment) rollback() error {
	var errs []error
	if a.masqSet {
		errs = append(errs, teardownMasq(a.conf.Name, []netip.Addr{a.addr.Addr()}, a.networkBits, a.args.ContainerID, a.args.IfName))
	}
	if a.createdVeth {
		errs = append(errs, a.ctrNS.Do(func(ns.NetNS) error { return deleteLinkIfPresent(a.args.IfName) }))
		errs = append(errs, deleteLinkIfPresent(a.hostName()))
	}
	return errors.Join(errs...)
}
