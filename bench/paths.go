package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/weftnet/weft/testbed"
)

// path is one way for host 1 to reach host 2: the workloads run from A (on
// host 1) to B (on host 2).
type path struct {
	Name string
	A, B netip.Addr
	// A6 and B6 are the endpoints over IPv6 (the tcp6-1 workload); both
	// invalid when the path carries no IPv6, and then No6 says why (a path
	// with neither fails that workload).
	A6, B6 netip.Addr
	No6    string
	// Note describes how the path was built (for the report).
	Note string
	// bed holds the path's two hosts when they are not the run's main
	// bed (weft direct runs its own pair of weftd on a bed of its own).
	bed *testbed.Bed
}

func rawPath(bed *testbed.Bed) *path {
	h1, h2 := bed.Hosts[0], bed.Hosts[1]
	return &path{Name: pathRaw, A: h1.IP, B: h2.IP, A6: h1.IPv6, B6: h2.IPv6,
		Note: fmt.Sprintf("veth pair %s <-> %s (IPv6 %s <-> %s), MTU %d", h1.IP, h2.IP, h1.IPv6, h2.IPv6, h1.MTU)}
}

// VXLAN path parameters.
const (
	vxlanDev = "vx0"
	vxlanMTU = 1450
)

// vxlanPath builds a point-to-point kernel VXLAN between the two hosts.
func vxlanPath(ctx context.Context, bed *testbed.Bed) (*path, error) {
	addrs := []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")}
	addrs6 := []netip.Addr{netip.MustParseAddr("fd99::1"), netip.MustParseAddr("fd99::2")}
	for i, h := range bed.Hosts[:2] {
		peer := bed.Hosts[1-i]
		steps := [][]string{
			{"link", "add", vxlanDev, "type", "vxlan", "id", "42", "remote", peer.IP.String(),
				"local", h.IP.String(), "dstport", "4789", "dev", h.Dev},
			{"link", "set", vxlanDev, "mtu", fmt.Sprint(vxlanMTU)},
			{"addr", "add", netip.PrefixFrom(addrs[i], 24).String(), "dev", vxlanDev},
			// Inner IPv6 over the same IPv4 underlay; nodad: usable at once.
			{"addr", "add", netip.PrefixFrom(addrs6[i], 64).String(), "dev", vxlanDev, "nodad"},
			{"link", "set", vxlanDev, "up"},
		}
		for _, args := range steps {
			if _, err := h.NS.Run(ctx, "ip", args...); err != nil {
				return nil, fmt.Errorf("vxlan: %w", err)
			}
		}
	}
	return &path{Name: pathVXLAN, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1],
		Note: fmt.Sprintf("kernel VXLAN id 42, UDP 4789 over the IPv4 underlay, %s <-> %s (IPv6 %s <-> %s), MTU %d", addrs[0], addrs[1], addrs6[0], addrs6[1], vxlanMTU)}, nil
}

// extraPath runs a user command that builds an overlay between the two
// hosts and prints the two overlay addresses "A B", or "A B A6 B6" when it
// carries IPv6 too.
func extraPath(ctx context.Context, bed *testbed.Bed, name, command string) (*path, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(),
		"HOST1_NS="+bed.Hosts[0].NS.Name, "HOST2_NS="+bed.Hosts[1].NS.Name,
		"HOST1_IP="+bed.Hosts[0].IP.String(), "HOST2_IP="+bed.Hosts[1].IP.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("extra path %s: %q: %w", name, command, err)
	}
	p, err := parseExtraAddrs(string(out))
	if err != nil {
		return nil, fmt.Errorf("extra path %s: %w", name, err)
	}
	p.Name = name
	p.Note = fmt.Sprintf("`%s` (%s <-> %s)", command, p.A, p.B)
	if p.A6.IsValid() {
		p.Note = fmt.Sprintf("`%s` (%s <-> %s, IPv6 %s <-> %s)", command, p.A, p.B, p.A6, p.B6)
	}
	return p, nil
}

// parseExtraAddrs reads "A B" or "A B A6 B6" from the last non-empty line
// of out: the endpoints over the path, and over IPv6 when the path
// carries it (A6 and B6 must be IPv6 addresses). With two addresses the
// path's No6 says that the command printed no IPv6 endpoints.
func parseExtraAddrs(out string) (*path, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	if len(fields) != 2 && len(fields) != 4 {
		return nil, fmt.Errorf("want two addresses \"A B\" (or four, \"A B A6 B6\") on stdout, got %q", out)
	}
	var addrs []netip.Addr
	for i, f := range fields {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("address %s: %w", []string{"A", "B", "A6", "B6"}[i], err)
		}
		if i >= 2 && (!a.Is6() || a.Is4In6()) {
			return nil, fmt.Errorf("address %s: %s is not an IPv6 address", []string{"A6", "B6"}[i-2], a)
		}
		addrs = append(addrs, a)
	}
	p := &path{A: addrs[0], B: addrs[1], No6: "its --extra command printed no IPv6 endpoints (\"A B\", not \"A B A6 B6\")"}
	if len(addrs) == 4 {
		p.A6, p.B6, p.No6 = addrs[2], addrs[3], ""
	}
	return p, nil
}

// parseExtra splits a --extra NAME=CMD value.
func parseExtra(v string) (name, command string, err error) {
	name, command, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(command) == "" {
		return "", "", fmt.Errorf("--extra %q: want NAME=CMD", v)
	}
	switch name {
	case pathRaw, pathVXLAN, pathWeft, pathWeftDirect, pathWeftVXLAN, pathWeftWireGuard, pathWireGuardGo, pathFlannelUDP:
		return "", "", fmt.Errorf("--extra %q: name %s is taken by a built-in path", v, name)
	}
	return name, command, nil
}

// waitReachable waits until host 1 can ping B from A, and B6 from A6
// when the path carries IPv6. A path with IPv6 endpoints that does not
// carry IPv6 fails here, before anything is measured.
func waitReachable(ctx context.Context, bed *testbed.Bed, p *path) error {
	pairs := [][2]netip.Addr{{p.A, p.B}}
	if p.A6.IsValid() || p.B6.IsValid() {
		if !p.A6.Is6() || !p.B6.Is6() {
			return fmt.Errorf("path %s: IPv6 endpoints %v <-> %v: want two IPv6 addresses", p.Name, p.A6, p.B6)
		}
		pairs = append(pairs, [2]netip.Addr{p.A6, p.B6})
	}
	for _, ab := range pairs {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := testbed.WaitFor(wctx, 250*time.Millisecond, func() error {
			_, err := bed.Hosts[0].NS.Run(wctx, "ping", "-c", "1", "-W", "1", "-I", ab[0].String(), ab[1].String())
			return err
		})
		cancel()
		if err != nil {
			return fmt.Errorf("path %s: %s unreachable from %s: %w", p.Name, ab[1], ab[0], err)
		}
	}
	return nil
}
