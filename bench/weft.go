package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// weftOptions are the weft path's knobs (bench flags).
type weftOptions struct {
	queues int // weftd --queues (0: weftd's default)
	txqlen int // weft0 txqueuelen set after the start (0: leave it)
	nice   int // weftd --nice (0: weftd's default)
	// etcd is the URL of an etcd outside weftd (empty: host 1's weftd
	// runs the embedded one).
	etcd string
}

// weftNetworkConfig is the weft path's network config: testbed/cluster's
// default (udp, port 8285) on a dual-stack network, so that the path
// carries TCP over IPv6 too (inner IPv6 over the IPv4 underlay: UDP peers
// are reached at their IPv4 PublicIP on a dual-stack underlay).
const weftNetworkConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"udp","Port":8285}}`

// nodeAddrs are the two nodes' overlay addresses of both families (their
// subnets' network addresses, on their devices).
func nodeAddrs(c *cluster.Cluster) (v4, v6 [2]netip.Addr, err error) {
	for i, n := range c.Nodes[:2] {
		env, err := n.Subnet()
		if err != nil {
			return v4, v6, fmt.Errorf("host %d: %w", i+1, err)
		}
		if !env.Subnet.IsValid() {
			return v4, v6, fmt.Errorf("host %d: no IPv4 subnet in %s", i+1, n.SubnetFile)
		}
		v4[i] = env.Subnet.Masked().Addr()
		if v6[i], err = ipv6Endpoint(env.IPv6Subnet); err != nil {
			return v4, v6, fmt.Errorf("host %d: %s: %w", i+1, n.SubnetFile, err)
		}
	}
	return v4, v6, nil
}

// weftPath starts weftd on both hosts through testbed/cluster (against the
// etcd at wo.etcd, else host 1 also runs the embedded etcd), with --queues
// and --nice when not 0, and returns the path between their weft0
// addresses, and the cluster (to stop it and to read weftd's CPU use).
func weftPath(ctx context.Context, bed *testbed.Bed, binDir, stateDir string, wo weftOptions) (*path, *cluster.Cluster, error) {
	queues := wo.queues
	opts := cluster.Options{Bin: binDir, DaemonOnly: true, WorkDir: stateDir, Queues: queues, NetworkConfig: weftNetworkConfig}
	if wo.etcd != "" {
		opts.EtcdEndpoint = wo.etcd
		opts.ExtraArgs = []string{"--network-config", weftNetworkConfig}
	}
	if wo.nice != 0 {
		opts.ExtraArgs = append(opts.ExtraArgs, "--nice", strconv.Itoa(wo.nice))
	}
	c, err := cluster.New(bed, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("weft: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("weft: %w", err)
	}
	addrs, addrs6, err := nodeAddrs(c)
	if err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("weft: %w", err)
	}
	note := fmt.Sprintf("weftd (UDP backend, port 8285, dual-stack network) on both hosts; host-to-host between the weft0 addresses %s <-> %s (IPv6 %s <-> %s, inside UDP over the IPv4 underlay) on the hosts' own stacks", addrs[0], addrs[1], addrs6[0], addrs6[1])
	if wo.etcd != "" {
		note += "; etcd outside weftd (a member of its own in host 1's namespace, as on the flannel-udp path)"
	} else {
		note += "; host 1's weftd runs the embedded etcd"
	}
	if queues > 0 {
		note += fmt.Sprintf("; weftd --queues %d", queues)
	}
	if wo.nice != 0 {
		note += fmt.Sprintf("; weftd --nice %d", wo.nice)
	}
	if wo.txqlen > 0 {
		for i := range 2 {
			if _, err := bed.Hosts[i].NS.Run(ctx, "ip", "link", "set", "weft0", "txqueuelen", strconv.Itoa(wo.txqlen)); err != nil {
				_ = c.Close()
				return nil, nil, fmt.Errorf("weft: host %d: %w", i+1, err)
			}
		}
		note += fmt.Sprintf("; weft0 txqueuelen %d", wo.txqlen)
	}
	return &path{Name: pathWeft, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1], Note: note}, c, nil
}

// copyWeftLogs keeps the weftd logs of the run in logDir.
func copyWeftLogs(c *cluster.Cluster, logDir string) {
	for i, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("weftd-host%d.log", i+1)), data, 0o644)
	}
}

// tailFile returns the last lines of a file.
func tailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// weftDirectNetworkConfig is the weft direct path's network config: the
// two hosts share an L2, so with DirectRouting they reach each other
// through a plain kernel route, not the UDP data path; dual-stack, on a
// bed with IPv6 underlay addresses too (a direct IPv6 route needs the
// peer's PublicIPv6 on the link; without it IPv6 would go through UDP).
const weftDirectNetworkConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"udp","Port":8285,"DirectRouting":true}}`

// weftDirectPath builds a second two-host bed (weftd allows one daemon per
// namespace, and the weft path's pair runs on the main bed) and runs weftd
// with DirectRouting on it. The path is between the weft0 addresses; the
// cluster and the bed are returned (even with an error) for the caller to
// stop and remove.
func weftDirectPath(ctx context.Context, binDir, stateDir string) (*path, *cluster.Cluster, *testbed.Bed, error) {
	bed, err := testbed.NewBed("wbd", 2, testbed.Options{IPv6: true})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("weft direct: %w", err)
	}
	c, err := cluster.New(bed, cluster.Options{Bin: binDir, DaemonOnly: true, WorkDir: filepath.Join(stateDir, "direct"), NetworkConfig: weftDirectNetworkConfig})
	if err != nil {
		return nil, nil, bed, fmt.Errorf("weft direct: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return nil, c, bed, fmt.Errorf("weft direct: %w", err)
	}
	addrs, addrs6, err := nodeAddrs(c)
	if err != nil {
		return nil, c, bed, fmt.Errorf("weft direct: %w", err)
	}
	// Measure only once host 1 routes to host 2 directly, in both
	// families (IPv6: a route via host 2's IPv6 underlay address).
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = testbed.WaitFor(wctx, 100*time.Millisecond, func() error {
		st, err := c.Nodes[0].Status(wctx)
		if err != nil {
			return err
		}
		if len(st.Peers) != 1 || st.Peers[0].Mode != "direct" {
			return fmt.Errorf("host 1's peers: %+v, want host 2 reached directly", st.Peers)
		}
		rt, err := routeTo(wctx, bed.Hosts[0].NS, addrs6[0], addrs6[1])
		if err != nil {
			return err
		}
		if rt.Dev != bed.Hosts[0].Dev || rt.Gateway != bed.Hosts[1].IPv6 {
			return fmt.Errorf("host 1's route to %s: dev %s via %v, want dev %s via %s (direct)", addrs6[1], rt.Dev, rt.Gateway, bed.Hosts[0].Dev, bed.Hosts[1].IPv6)
		}
		return nil
	})
	if err != nil {
		return nil, c, bed, fmt.Errorf("weft direct: %w", err)
	}
	return &path{Name: pathWeftDirect, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1], bed: bed,
		Note: fmt.Sprintf("weftd with DirectRouting (dual-stack network) on a second veth pair (%s <-> %s, IPv6 %s <-> %s): a kernel route to the peer's subnet via its underlay address of the same family, no encapsulation; host-to-host between the weft0 addresses %s <-> %s (IPv6 %s <-> %s)",
			bed.Hosts[0].IP, bed.Hosts[1].IP, bed.Hosts[0].IPv6, bed.Hosts[1].IPv6, addrs[0], addrs[1], addrs6[0], addrs6[1])}, c, bed, nil
}

// copyDirectLogs keeps the weft direct path's weftd logs in logDir.
func copyDirectLogs(c *cluster.Cluster, logDir string) {
	for i, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("weftd-direct-host%d.log", i+1)), data, 0o644)
	}
}
