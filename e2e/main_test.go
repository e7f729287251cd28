//go:build !unit

// Package e2e runs weft end to end: real weftd daemons in network
// namespaces joined by veth underlays, a real embedded etcd, the real
// cnitool with the weft CNI plugin, real traffic. It needs root and fails
// (never skips) without it.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// binDir holds the binaries built once for the whole run.
var binDir string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	if err := testbed.CheckRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n(the e2e tests need root, ip, /dev/net/tun: run `sudo make test`)\n", err)
		return 1
	}
	if _, err := cluster.Cnitool(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	for _, tool := range []string{"ping", "iperf3", "wg", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s not installed: run scripts/deps.sh\n", tool)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	for name, pkg := range map[string]string{"weftd": "./cmd/weftd", "weftctl": "./cmd/weftctl", "weft": "./cmd/weft-cni",
		// the standalone daemon of the embedded module (interop peer)
		"wireguard-go": "golang.zx2c4.com/wireguard"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", name, err, out)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

// newCluster builds a testbed of n hosts and starts weftd on each.
func newCluster(t *testing.T, hosts int, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	c := newStoppedCluster(t, hosts, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, hosts-1)
	return c
}

// newStoppedCluster prepares a cluster whose daemons the test starts.
func newStoppedCluster(t *testing.T, hosts int, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	return newStoppedClusterOn(t, testbed.ForTest(t, "we", hosts), opts)
}

// newStoppedClusterOn prepares a cluster on a bed the test built.
func newStoppedClusterOn(t *testing.T, bed *testbed.Bed, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	opts.Bin = binDir
	opts.WorkDir = t.TempDir()
	c, err := cluster.New(bed, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("node %d log:\n%s", n.Index+1, n.Log(40))
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

// waitPeers waits until every running node has want peers in its table.
func waitPeers(t *testing.T, c *cluster.Cluster, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		err := testbed.WaitFor(ctx, 50*time.Millisecond, func() error {
			st, err := n.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Peers) != want {
				return fmt.Errorf("node %d has %d peers, want %d", n.Index+1, len(st.Peers), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// addContainer attaches a container to node and removes it at cleanup.
func addContainer(t *testing.T, n *cluster.Node, name string) *cluster.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := n.AddContainer(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Remove(ctx); err != nil {
			t.Errorf("remove container %s: %v", c.Name, err)
		}
	})
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
