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
	// Note describes how the path was built (for the report).
	Note string
	// bed holds the path's two hosts when they are not the run's main
	// bed (weft direct runs its own pair of weftd on a bed of its own).
	bed *testbed.Bed
}

func rawPath(bed *testbed.Bed) *path {
	h1, h2 := bed.Hosts[0], bed.Hosts[1]
	return &path{Name: pathRaw, A: h1.IP, B: h2.IP,
		Note: fmt.Sprintf("veth pair %s <-> %s, MTU %d", h1.IP, h2.IP, h1.MTU)}
}

// VXLAN path parameters.
const (
	vxlanDev = "vx0"
	vxlanMTU = 1450
)

// vxlanPath builds a point-to-point kernel VXLAN between the two hosts.
func vxlanPath(ctx context.Context, bed *testbed.Bed) (*path, error) {
	addrs := []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")}
	for i, h := range bed.Hosts[:2] {
		peer := bed.Hosts[1-i]
		steps := [][]string{
			{"link", "add", vxlanDev, "type", "vxlan", "id", "42", "remote", peer.IP.String(),
				"local", h.IP.String(), "dstport", "4789", "dev", h.Dev},
			{"link", "set", vxlanDev, "mtu", fmt.Sprint(vxlanMTU)},
			{"addr", "add", netip.PrefixFrom(addrs[i], 24).String(), "dev", vxlanDev},
			{"link", "set", vxlanDev, "up"},
		}
		for _, args := range steps {
			if _, err := h.NS.Run(ctx, "ip", args...); err != nil {
				return nil, fmt.Errorf("vxlan: %w", err)
			}
		}
	}
	return &path{Name: pathVXLAN, A: addrs[0], B: addrs[1],
		Note: fmt.Sprintf("kernel VXLAN id 42, UDP 4789, %s <-> %s, MTU %d", addrs[0], addrs[1], vxlanMTU)}, nil
}

// extraPath runs a user command that builds an overlay between the two
// hosts and prints the two overlay addresses "A B".
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
	a, b, err := parseAddrPair(string(out))
	if err != nil {
		return nil, fmt.Errorf("extra path %s: %w", name, err)
	}
	return &path{Name: name, A: a, B: b, Note: fmt.Sprintf("`%s` (%s <-> %s)", command, a, b)}, nil
}

// parseAddrPair reads "A B" from the last non-empty line of out.
func parseAddrPair(out string) (netip.Addr, netip.Addr, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	if len(fields) != 2 {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("want two addresses \"A B\" on stdout, got %q", out)
	}
	a, err := netip.ParseAddr(fields[0])
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("address A: %w", err)
	}
	b, err := netip.ParseAddr(fields[1])
	if err != nil {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("address B: %w", err)
	}
	return a, b, nil
}

// parseExtra splits a --extra NAME=CMD value.
func parseExtra(v string) (name, command string, err error) {
	name, command, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.TrimSpace(command) == "" {
		return "", "", fmt.Errorf("--extra %q: want NAME=CMD", v)
	}
	switch name {
	case pathRaw, pathVXLAN, pathWeft, pathWeftDirect, pathWeftWireGuard, pathWireGuardGo:
		return "", "", fmt.Errorf("--extra %q: name %s is taken by a built-in path", v, name)
	}
	return name, command, nil
}

// waitReachable waits until host 1 can ping B from A.
func waitReachable(ctx context.Context, bed *testbed.Bed, p *path) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := testbed.WaitFor(wctx, 250*time.Millisecond, func() error {
		_, err := bed.Hosts[0].NS.Run(wctx, "ping", "-c", "1", "-W", "1", "-I", p.A.String(), p.B.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("path %s: %s unreachable from %s: %w", p.Name, p.B, p.A, err)
	}
	return nil
}
