package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/weftnet/weft/testbed"
)

// TCP over IPv6: the tcp6-1 workload runs one iperf3 stream between a
// path's IPv6 endpoints, and checks that the run really went over IPv6
// between them and that its MSS fits the MTU of the route it took.

// ipv6TCPOverhead is the IPv6 header (no extension headers) plus the TCP
// header without options: an IPv6 segment's MSS is at most MTU - 60.
const ipv6TCPOverhead = 40 + 20

// maxTCPOptions is the most TCP options a segment carries (the MSS that
// TCP_MAXSEG reports is less the options every segment has: timestamps).
const maxTCPOptions = 40

// runTCP6 is the tcp6-1 workload over p: a path that carries no IPv6 by
// design is recorded as not measured (with the reason); one with neither
// IPv6 endpoints nor a reason fails.
func (r *runner) runTCP6(ctx context.Context, p *path) error {
	if !p.A6.IsValid() || !p.B6.IsValid() {
		if p.No6 == "" {
			return fmt.Errorf("path %s has no IPv6 endpoints and no reason why", p.Name)
		}
		r.res.notMeasured(p.Name, mTCP6, p.No6)
		return nil
	}
	ns := r.bedOf(p).Hosts[0].NS
	rt, err := routeTo(ctx, ns, p.A6, p.B6)
	if err != nil {
		return err
	}
	res, err := r.iperfBetween(ctx, p, p.A6, p.B6)
	if err != nil {
		return err
	}
	if err := checkIPv6Run(res, p.A6, p.B6, rt.MTU); err != nil {
		return fmt.Errorf("%s (route: dev %s, MTU %d): %w", p.Name, rt.Dev, rt.MTU, err)
	}
	if res.BitsPerSecond <= 0 {
		return errors.New("iperf3 measured zero throughput over IPv6")
	}
	slog.Info("TCP over IPv6", "path", p.Name, "from", res.Local, "to", res.Remote, "dev", rt.Dev, "mtu", rt.MTU, "mss", res.MSS,
		"gbps", res.BitsPerSecond/1e9, "retransmits", res.Retransmits)
	r.res.add(p.Name, mTCP6, res.BitsPerSecond/1e9)
	return nil
}

// checkIPv6Run verifies that an iperf3 run connected a to b (IPv6
// addresses), and that its MSS fits mtu: at most mtu - 60, and no more
// than the TCP options below it (a smaller one means a clamp or a path
// MTU lower than the route's).
func checkIPv6Run(res iperfResult, a, b netip.Addr, mtu int) error {
	if !a.Is6() || a.Is4In6() || !b.Is6() || b.Is4In6() {
		return fmt.Errorf("IPv6 run between %s and %s: not IPv6 addresses", a, b)
	}
	if res.Local != a || res.Remote != b {
		return fmt.Errorf("iperf3 connected %v -> %v, want %s -> %s", res.Local, res.Remote, a, b)
	}
	if mtu < 1280 {
		return fmt.Errorf("route MTU %d is below IPv6's minimum 1280", mtu)
	}
	if res.MSS <= 0 {
		return errors.New("iperf3 reported no MSS (tcp_mss_default)")
	}
	limit := mtu - ipv6TCPOverhead
	if res.MSS > limit {
		return fmt.Errorf("MSS %d over IPv6 exceeds MTU %d - %d = %d", res.MSS, mtu, ipv6TCPOverhead, limit)
	}
	if res.MSS < limit-maxTCPOptions {
		return fmt.Errorf("MSS %d over IPv6 is more than %d bytes of TCP options below MTU %d - %d = %d: clamped, or a lower path MTU",
			res.MSS, maxTCPOptions, mtu, ipv6TCPOverhead, limit)
	}
	return nil
}

// route is what `ip -j route get` says of the way to an address.
type route struct {
	Dev     string
	Gateway netip.Addr // invalid when the destination is on the link
	MTU     int        // the route's MTU (a path MTU exception or an mtu attribute), 0 for the device's
}

// parseRouteGet reads `ip -j [-6] route get` output: one route.
func parseRouteGet(data []byte) (route, error) {
	var rs []struct {
		Dev     string           `json:"dev"`
		Gateway string           `json:"gateway"`
		Metrics []map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return route{}, fmt.Errorf("ip route get: %w: %q", err, data)
	}
	if len(rs) != 1 || rs[0].Dev == "" {
		return route{}, fmt.Errorf("ip route get: want one route with a device, got %q", data)
	}
	rt := route{Dev: rs[0].Dev}
	if rs[0].Gateway != "" {
		gw, err := netip.ParseAddr(rs[0].Gateway)
		if err != nil {
			return route{}, fmt.Errorf("ip route get: gateway: %w", err)
		}
		rt.Gateway = gw
	}
	for _, m := range rs[0].Metrics {
		if v, ok := m["mtu"].(float64); ok {
			rt.MTU = int(v)
		}
	}
	return rt, nil
}

// parseLinkMTU reads the MTU from `ip -j link show dev X` output.
func parseLinkMTU(data []byte) (int, error) {
	var ls []struct {
		MTU int `json:"mtu"`
	}
	if err := json.Unmarshal(data, &ls); err != nil {
		return 0, fmt.Errorf("ip link show: %w: %q", err, data)
	}
	if len(ls) != 1 || ls[0].MTU <= 0 {
		return 0, fmt.Errorf("ip link show: want one device with an MTU, got %q", data)
	}
	return ls[0].MTU, nil
}

// routeTo is the route ns takes from a to b, its MTU filled in from the
// device when the route has none of its own.
func routeTo(ctx context.Context, ns *testbed.NS, a, b netip.Addr) (route, error) {
	out, err := ns.Run(ctx, "ip", "-j", "route", "get", b.String(), "from", a.String())
	if err != nil {
		return route{}, fmt.Errorf("ip route get %s from %s: %w: %s", b, a, err, out)
	}
	rt, err := parseRouteGet([]byte(out))
	if err != nil || rt.MTU > 0 {
		return rt, err
	}
	out, err = ns.Run(ctx, "ip", "-j", "link", "show", "dev", rt.Dev)
	if err != nil {
		return route{}, fmt.Errorf("ip link show %s: %w: %s", rt.Dev, err, out)
	}
	rt.MTU, err = parseLinkMTU([]byte(out))
	return rt, err
}

// ipv6Endpoint is a weft node's own overlay IPv6 address: its IPv6
// subnet's network address, which weftd puts on its device (weft0,
// flannel-v6.1) as a /128, as it puts the IPv4 one as a /32.
func ipv6Endpoint(sub netip.Prefix) (netip.Addr, error) {
	if !sub.IsValid() || !sub.Addr().Is6() {
		return netip.Addr{}, fmt.Errorf("no IPv6 subnet in the subnet file (%v): the network is not dual-stack", sub)
	}
	return sub.Masked().Addr(), nil
}
