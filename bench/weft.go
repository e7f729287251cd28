package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// weftPath starts weftd on both hosts through testbed/cluster (host 1 also
// runs the embedded etcd) and returns the path between their weft0
// addresses, and the cluster (to stop it and to read weftd's CPU use).
func weftPath(ctx context.Context, bed *testbed.Bed, binDir, stateDir string) (*path, *cluster.Cluster, error) {
	c, err := cluster.New(bed, cluster.Options{Bin: binDir, WorkDir: stateDir})
	if err != nil {
		return nil, nil, fmt.Errorf("weft: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Close()
		return nil, nil, fmt.Errorf("weft: %w", err)
	}
	var addrs [2]netip.Addr
	for i, n := range c.Nodes[:2] {
		if addrs[i], err = n.TunAddr(); err != nil {
			_ = c.Close()
			return nil, nil, fmt.Errorf("weft: host %d: %w", i+1, err)
		}
	}
	return &path{Name: pathWeft, A: addrs[0], B: addrs[1],
		Note: fmt.Sprintf("weftd (UDP backend, port 8285) on both hosts; host-to-host between the weft0 addresses %s <-> %s on the hosts' own stacks", addrs[0], addrs[1])}, c, nil
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
