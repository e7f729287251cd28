package udp

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/routing"
)

// direct is what the direct routes need from the kernel.
type direct struct {
	kernel  *routing.Kernel
	onLink  []netip.Prefix
	check   *routing.SourceCheck
	release func() // removes the source check, frees the netlink handle
}

// startDirect prepares direct routing on the underlay device: it reads the
// connected prefixes (once), turns on forwarding and strict rp_filter,
// removes weft routes an earlier run left behind and (re)creates the
// source check's table (and its IPv6 table on a network with IPv6, ipv6).
func startDirect(underlayDev string, policy routing.Policy, ipv6 bool, log *slog.Logger) (*direct, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("direct routing: netlink: %w", err)
	}
	fail := func(err error) (*direct, error) {
		h.Close()
		return nil, fmt.Errorf("direct routing: %w", err)
	}
	k, err := routing.NewKernel(h, underlayDev)
	if err != nil {
		return fail(err)
	}
	onLink, err := k.OnLinkPrefixes()
	if err != nil {
		return fail(err)
	}
	if err := acceptDirectTraffic(underlayDev, ipv6); err != nil {
		return fail(err)
	}
	if v := rpFilterAll(); v == "2" {
		log.Warn("net.ipv4.conf.all.rp_filter=2 (loose) overrides the strict check on the underlay: sources in other peers' subnets are accepted from the underlay", "underlay", underlayDev)
	}
	if stale, err := k.Owned(); err == nil && len(stale) > 0 {
		log.Info("removing weft routes left by an earlier run", "routes", len(stale))
	}
	if _, err := k.Sync(nil); err != nil {
		return fail(fmt.Errorf("clean routes of an earlier run: %w", err))
	}
	check, err := routing.NewSourceCheckFor(underlayDev, ipv6)
	if err != nil {
		return fail(err)
	}
	log.Info("direct routing", "hostGW", policy.HostGW, "underlay", underlayDev, "onLink", onLink,
		"routeProtocol", routing.Protocol, "sourceCheck", "table ip "+routing.SourceTable, "ipv6", ipv6)
	return &direct{kernel: k, onLink: onLink, check: check, release: func() {
		if err := check.Close(); err != nil {
			log.Warn("remove the source check", "err", err)
		}
		h.Close()
	}}, nil
}
