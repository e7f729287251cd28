package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// Add attaches the container: an address from each of the node's subnets
// (IPv4, IPv6 or both, as the subnet file has them), a veth pair with the
// container end in CNI_NETNS, the host end on the bridge, routes of each
// family, and optionally masquerading. On failure it undoes its work.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	if err := refuseNodeNetNS(args); err != nil {
		return err
	}
	if strings.Contains(args.IfName, "%") {
		// The kernel makes "e%d" into "e0" when it creates the link:
		// the interface would not have the name the runtime gave.
		return types.NewError(types.ErrInvalidEnvironmentVariables,
			fmt.Sprintf("CNI_IFNAME %q: %% is a template the kernel expands, not part of a name", args.IfName), "")
	}
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
	if err := req.checkSubnets(env); err != nil {
		return err
	}
	fams, err := familiesOf(env)
	if err != nil {
		return internalError("node subnet from %s: %v", conf.SubnetFile, err)
	}
	for _, f := range fams {
		if err := checkSubnetFree(f.pool.Prefix, conf.Bridge); err != nil {
			return err
		}
	}
	routes, err := containerRoutes(conf, env)
	if err != nil {
		return err
	}
	wl, err := identityOf(conf, args.Args)
	if err != nil {
		return err
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
	for i := range fams {
		f := &fams[i]
		addr, err := allocateFor(store, att, f.pool, req.static(f.pool))
		if err != nil {
			// The addresses of the families before this one go too:
			// nothing is attached with only some of its families.
			if _, rerr := store.Release(att); rerr != nil {
				p.log().Warn("release addresses after failed allocation", "err", rerr)
			}
			return err
		}
		f.addr = netip.PrefixFrom(addr, f.pool.Prefix.Bits())
		p.log().Debug("allocated", "addr", addr, "container", att.ContainerID, "ifname", att.IfName)
	}

	a := attachment{conf: conf, args: args, fams: fams, mtu: env.MTU, mac: req.MAC, ctrNS: ctrNS,
		masq: conf.masqEnabled(env), routes: routes}
	res, err := a.create()
	var registered []netip.Addr
	if err == nil {
		registered, err = registerAdd(conf, args, wl, a.addrs())
	}
	if err != nil {
		// A family weftd accepted before one it refused is withdrawn.
		p.registerDelAddrs(conf, args, registered)
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

// family is one address family of an attachment: the node's pool, the
// overlay network and (once allocated) the container's address with the
// subnet's length.
type family struct {
	pool    Pool
	network netip.Prefix
	addr    netip.Prefix
}

// gateway is the bridge's address of the family with the subnet's length.
func (f family) gateway() netip.Prefix { return netip.PrefixFrom(f.pool.Gateway, f.pool.Prefix.Bits()) }

// familiesOf lists the families of the node's network, IPv4 first.
func familiesOf(env subnetfile.Env) ([]family, error) {
	var fams []family
	for _, s := range []struct{ network, subnet netip.Prefix }{{env.Network, env.Subnet}, {env.IPv6Network, env.IPv6Subnet}} {
		if !s.subnet.IsValid() {
			continue
		}
		pool, err := NewPool(s.subnet)
		if err != nil {
			return nil, err
		}
		fams = append(fams, family{pool: pool, network: s.network})
	}
	if len(fams) == 0 {
		return nil, errors.New("no subnet of either family")
	}
	return fams, nil
}

// static is the address the runtime asked for in pool's family (invalid:
// allocate one).
func (r addressRequest) static(pool Pool) staticAddr {
	if pool.Is6() {
		return staticAddr{r.IP6, r.IP6From}
	}
	return staticAddr{r.IP, r.IPFrom}
}

// staticAddr is a requested address and where the request came from.
type staticAddr struct {
	ip   netip.Addr
	from string
}

// attachment carries what ADD needs to create (and roll back) one
// container interface.
type attachment struct {
	conf   *NetConf
	args   *skel.CmdArgs
	fams   []family // each with its addr allocated
	mtu    int
	mac    net.HardwareAddr // nil: the kernel's choice
	routes []*types.Route
	ctrNS  ns.NetNS
	masq   bool

	createdVeth bool
	masqSet     []netip.Addr
}

func (a *attachment) hostName() string { return HostVethName(a.args.ContainerID, a.args.IfName) }

// addrs are the container's addresses, IPv4 first.
func (a *attachment) addrs() []netip.Addr {
	out := make([]netip.Addr, 0, len(a.fams))
	for _, f := range a.fams {
		out = append(out, f.addr.Addr())
	}
	return out
}

func (a *attachment) create() (attachmentResult, error) {
	var res attachmentResult
	var gateways []netip.Prefix
	for _, f := range a.fams {
		if err := enableForwarding(f.pool.Is6()); err != nil {
			return res, err
		}
		gateways = append(gateways, f.gateway())
	}
	br, err := ensureBridge(a.conf.Bridge, gateways, a.mtu)
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
		a.routes, err = configureContainerSide(a.args.IfName, a.fams, a.routes)
		return err
	})
	if err != nil {
		return res, err
	}
	if _, err := attachToBridge(a.hostName(), br, a.conf.HairpinMode); err != nil {
		return res, err
	}
	if a.masq {
		for _, f := range a.fams {
			a.masqSet = append(a.masqSet, f.addr.Addr())
			if err := setupMasq(a.conf.Name, f.addr.Addr(), f.network.Bits(), a.args.ContainerID, a.args.IfName); err != nil {
				return res, err
			}
		}
	}
	// The bridge's MAC may change as ports join: read it last.
	br, err = bridgeByName(a.conf.Bridge)
	if err != nil {
		return res, err
	}
	res = attachmentResult{
		bridgeName: br.Name, bridgeMAC: br.HardwareAddr.String(),
		hostName: pair.host.Name, hostMAC: pair.host.HardwareAddr.String(),
		ctrName: pair.container.Name, ctrMAC: pair.container.HardwareAddr.String(),
		sandbox: a.args.Netns, routes: a.routes, dns: a.conf.DNS,
	}
	for _, f := range a.fams {
		res.ips = append(res.ips, resultIP{addr: f.addr, gateway: f.pool.Gateway})
	}
	return res, nil
}

// enableForwarding turns on forwarding of the family in the node's
// namespace (the bridge routes the containers' traffic).
func enableForwarding(ipv6 bool) error {
	if ipv6 {
		if err := ip.EnableIP6Forward(); err != nil {
			return fmt.Errorf("enable IPv6 forwarding (is IPv6 disabled on this host?): %w", err)
		}
		return nil
	}
	if err := ip.EnableIP4Forward(); err != nil {
		return fmt.Errorf("enable IPv4 forwarding: %w", err)
	}
	return nil
}

// configureContainerSide assigns the addresses and routes (call in the
// container namespace) and returns the routes it installed. With IPv6 it
// turns IPv6 on for the interface and router advertisements off (routes
// come from weft, not from whatever sends RAs on the bridge), and adds the
// address without duplicate address detection: the store made it unique,
// and DAD would leave it unusable for a second or more after ADD.
func configureContainerSide(ifname string, fams []family, routes []*types.Route) ([]*types.Route, error) {
	link, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", ifname, err)
	}
	// Router advertisements off whatever the families: on an IPv4-only
	// network the interface still has IPv6 (a link-local address), and a
	// container sending RAs on the bridge gave the others a default route
	// through itself and a SLAAC address (TestRogueRouterAdvertisementIgnored).
	if err := refuseRouterAdvertisements(ifname); err != nil {
		return nil, err
	}
	for _, f := range fams {
		addr := &netlink.Addr{IPNet: addrToIPNet(f.addr.Addr(), f.addr.Bits())}
		if f.pool.Is6() {
			if err := enableIPv6On(ifname, false); err != nil {
				return nil, err
			}
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("add %s to %s: %w", f.addr, ifname, err)
		}
	}
	return addRoutes(link, routes)
}

// enableIPv6On turns IPv6 on for the interface in the current namespace
// and sets whether it accepts router advertisements.
func enableIPv6On(ifname string, acceptRA bool) error {
	ra := "0"
	if acceptRA {
		ra = "1"
	}
	for _, kv := range [][2]string{{"disable_ipv6", "0"}, {"accept_ra", ra}} {
		key := "net/ipv6/conf/" + ifname + "/" + kv[0]
		if _, err := sysctl.Sysctl(key, kv[1]); err != nil {
			return fmt.Errorf("set %s to %s (is IPv6 disabled on this host?): %w", key, kv[1], err)
		}
	}
	return nil
}

// refuseRouterAdvertisements sets accept_ra 0 on the interface (current
// namespace) without turning IPv6 on: routes come from weft, never from a
// router advertisement a container sends on the bridge. Nothing to do when
// the kernel has no IPv6 (ipv6.disable=1: no sysctl for the interface).
func refuseRouterAdvertisements(ifname string) error {
	key := "net/ipv6/conf/" + ifname + "/accept_ra"
	if _, err := os.Stat("/proc/sys/" + key); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := sysctl.Sysctl(key, "0"); err != nil {
		return fmt.Errorf("set %s to 0: %w", key, err)
	}
	return nil
}

// allocateFor reserves the requested static address, or any free one.
func allocateFor(store *Store, att Attachment, pool Pool, req staticAddr) (netip.Addr, error) {
	if req.ip.IsValid() {
		err := store.AllocateAddr(att, req.ip, pool)
		if errors.Is(err, ErrAddressTaken) {
			return netip.Addr{}, internalError("static address from %s: %v", req.from, err)
		}
		if err != nil {
			return netip.Addr{}, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("static address from %s: %v", req.from, err), "")
		}
		return req.ip, nil
	}
	addr, err := store.Allocate(att, pool)
	if errors.Is(err, ErrPoolExhausted) {
		return netip.Addr{}, internalError("cannot allocate an %s address for container %s: %v", familyName(pool.Is6()), att.ContainerID, err)
	}
	if err != nil {
		return netip.Addr{}, internalError("allocate address: %v", err)
	}
	return addr, nil
}

func familyName(ipv6 bool) string {
	if ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

// rollback undoes what create did, and only that.
func (a *attachment) rollback() error {
	var errs []error
	if len(a.masqSet) > 0 {
		nets := make([]*net.IPNet, 0, len(a.masqSet))
		for _, f := range a.fams {
			if slices.Contains(a.masqSet, f.addr.Addr()) {
				nets = append(nets, masqNet(f.addr.Addr(), f.network.Bits()))
			}
		}
		errs = append(errs, teardownMasq(a.conf.Name, nets, a.args.ContainerID, a.args.IfName))
	}
	if a.createdVeth {
		errs = append(errs, a.ctrNS.Do(func(ns.NetNS) error { return deleteLinkIfPresent(a.args.IfName) }))
		errs = append(errs, deleteLinkIfPresent(a.hostName()))
	}
	return errors.Join(errs...)
}
