//go:build !unit

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/testbed/flannel"
)

// flanneldBin builds (once, cached) the real flanneld or fails the test.
func flanneldBin(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bin, err := flannel.Flanneld(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// weftOnFlannelPrefix is weftd's part of a mixed cluster: flannel's etcd
// prefix and flannel's subnet file, so that its node is one of flannel's.
func weftOnFlannelPrefix(etcd string) cluster.Options {
	return cluster.Options{
		EtcdEndpoint:      etcd,
		FlannelSubnetFile: true,
		ExtraArgs:         []string{"--etcd-prefix", flannel.DefaultPrefix, "--network-config", vxlanConfig},
	}
}

// startFlanneld runs the real flanneld on node n's host (n's weftd is not
// running) and returns its subnet file once written.
func startFlanneld(t *testing.T, c *cluster.Cluster, n *cluster.Node, bin, etcd string) (*testbed.Proc, flannelEnv) {
	t.Helper()
	since := time.Now().Add(-time.Second)
	p, err := flannel.Start(c.Bed, n.Host, bin, filepath.Join(n.Dir, "flanneld.log"), flannel.Options{Etcd: etcd, SubnetFile: n.FlannelSubnetFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flannel.WaitSubnetFile(ctxFor(t, time.Minute), p, n.FlannelSubnetFile, since); err != nil {
		t.Fatalf("node %d: %v\n%s", n.Index+1, err, tailFile(p.LogPath))
	}
	return p, readFlannelEnv(t, n.FlannelSubnetFile)
}

// A weftd node and a flanneld node (the real one, vxlan backend) on one
// etcd prefix, /coreos.com/network: each sees the other's lease, and their
// containers (weft's plugin on one, flannel's bridge/host-local delegate on
// the other) talk both ways through the two kernels' VXLAN devices.
func TestMixedWeftAndFlanneld(t *testing.T) {
	bin := flanneldBin(t)
	bed := testbed.ForTest(t, "wm", 2)
	etcd := flannel.StartEtcd(t, bed.Hosts[0])
	c := newStoppedClusterOn(t, bed, weftOnFlannelPrefix(etcd))
	weftNode, flannelNode := c.Nodes[0], c.Nodes[1]
	if err := weftNode.Start(); err != nil {
		t.Fatal(err)
	}
	if err := weftNode.WaitReady(ctxFor(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, fe := startFlanneld(t, c, flannelNode, bin, etcd)
	if fe.mtu != flannelNode.Host.MTU-50 {
		t.Errorf("flanneld's FLANNEL_MTU %d", fe.mtu)
	}
	waitPeersOf(t, weftNode, 1)

	leases := leasesAt(t, bed.Hosts[0], etcd, flannel.DefaultPrefix)
	if len(leases) != 2 {
		t.Fatalf("leases under %s: %v", flannel.DefaultPrefix, leases)
	}
	for k, l := range leases {
		if l.BackendType != "vxlan" || l.BackendData.VNI != 1 || l.BackendData.VtepMAC == "" {
			t.Errorf("lease %s: %+v", k, l)
		}
	}
	for _, n := range c.Nodes {
		checkVXLANDevice(t, n.Host)
	}

	wc := addContainer(t, weftNode, "wmw")
	fc, fip := flannelContainer(t, flannelNode, flannelCNIConf(flannelNode, flannelNode.FlannelSubnetFile))
	ctx := ctxFor(t, time.Minute)
	if out, err := wc.Ping(ctx, fip, 3); err != nil {
		t.Fatalf("weft container %s -> flannel container %s: %v\n%s", wc.IP, fip, err, out)
	}
	runIn(t, ctx, fc, "ping", "-c", "3", "-i", "0.2", "-W", "2", wc.IP.String())
}

// waitPeersOf waits until node n's /status lists want peers.
func waitPeersOf(t *testing.T, n *cluster.Node, want int) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	err := testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
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
		t.Fatalf("%v\n%s", err, n.Log(20))
	}
}
