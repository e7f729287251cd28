//go:build !unit

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/flannel"
)

// ipv6OnlyVXLANConfig is an IPv6-only network on flannel's vxlan backend.
const ipv6OnlyVXLANConfig = `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"vxlan"}}`

// A weftd node and the real flanneld v0.28.10 share an IPv6-only vxlan
// network (EnableIPv4 false) on flannel's etcd prefix: both leases at
// flanneld's IPv6-only key 0.0.0.0-0&<v6 subnet> with PublicIPv6 and
// BackendV6Data, flannel-v6.1 on both nodes and no flannel.1 on the weftd
// node, both subnet files with the IPv6 keys only; weftd installs
// flanneld's peer (route, neighbour, FDB entry on flannel-v6.1) and the
// echo requests of a container attached by weft's plugin on the weftd node
// reach one attached by flannel's plugin on the flanneld node. The way
// back cannot work with flanneld v0.28.10 (below). (etcd is reached over the hosts' IPv4 addresses; the network
// and the VXLAN underlay are IPv6 only.) flanneld starts first: v0.28.10
// in etcd mode cannot take an IPv6-only lease once any other lease exists
// (its allocateSubnet walks the IPv4 range 0.0.0.0/0 with IP4Net.Next,
// which adds 1<<32 to a uint32 and stays on 0.0.0.0, overlapping every
// lease's "0.0.0.0-0": it loops forever after "Picking subnet in range
// 0.0.0.0 ... 0.0.0.0"; seen here with weftd first). docs/flannel.md.
func TestMixedWeftdAndFlanneldIPv6Only(t *testing.T) {
	bin := flanneldBin(t)
	ctx := ctxFor(t, 4*time.Minute)
	c, etcd, v6 := mixedFlannelBed(t, "wo6", ipv6OnlyVXLANConfig, "--public-ipv6", "2001:db8::1")
	weftNode, flannelNode := c.Nodes[0], c.Nodes[1]
	cli := etcdClientIn(t, weftNode.Host.NS, etcd)
	since := time.Now().Add(-time.Second)
	p, err := flannel.Start(c.Bed, flannelNode.Host, bin, filepath.Join(flannelNode.Dir, "flanneld.log"),
		flannel.Options{Etcd: etcd, SubnetFile: flannelNode.FlannelSubnetFile, Extra: []string{"--public-ipv6=" + v6[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flannel.WaitSubnetFile(ctxFor(t, time.Minute), p, flannelNode.FlannelSubnetFile, since); err != nil {
		t.Fatalf("%v\n%s", err, tailFile(p.LogPath))
	}
	if err := weftNode.Start(); err != nil {
		t.Fatal(err)
	}
	if err := weftNode.WaitReady(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("%v\n%s", err, weftNode.Log(40))
	}
	defer func() {
		if t.Failed() {
			time.Sleep(6 * time.Second) // klog flushes every 5 s
			t.Logf("flanneld exited: %v; flanneld node's IPv6 routes:\n%s", p.Exited(), runIn(t, ctx, flannelNode.Host.NS, "ip", "-6", "route"))
			log, _ := os.ReadFile(p.LogPath)
			t.Logf("flanneld log:\n%s\nweftd log:\n%s", log[max(0, len(log)-6000):], weftNode.Log(40))
		}
	}()
	fe, we := readFlannelEnv(t, flannelNode.FlannelSubnetFile), readFlannelEnv(t, weftNode.FlannelSubnetFile)
	if fe.subnet.IsValid() || we.subnet.IsValid() || !fe.subnet6.IsValid() || !we.subnet6.IsValid() {
		t.Fatalf("subnet files: flanneld %+v, weftd %+v; want IPv6 subnets only", fe, we)
	}
	resp, err := cli.Get(ctx, flannel.DefaultPrefix+"/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		k, v := string(kv.Key), string(kv.Value)
		if !strings.Contains(k, "/0.0.0.0-0&fd10:244:") || !strings.Contains(v, `"BackendV6Data":{"VNI":1,"VtepMAC":"`) || strings.Contains(v, `"BackendData"`) {
			t.Errorf("lease %s = %s: want flanneld's IPv6-only key and BackendV6Data only", k, v)
		}
		t.Logf("lease %s = %s", k, v)
	}
	if len(resp.Kvs) != 2 {
		t.Fatalf("%d leases, want 2: %s", len(resp.Kvs), keysOf(resp))
	}
	if out := runIn(t, ctx, weftNode.Host.NS, "ip", "-d", "link", "show"); !strings.Contains(out, "flannel-v6.1") || strings.Contains(out, "flannel.1:") ||
		!strings.Contains(out, "vxlan id 1 local "+v6[0]) {
		t.Errorf("weftd node's devices (want flannel-v6.1 local %s, no flannel.1):\n%s", v6[0], out)
	}
	waitPeersOf(t, weftNode, 1)
	time.Sleep(2 * time.Second)
	if p.Exited() {
		log, _ := os.ReadFile(p.LogPath)
		i := strings.Index(string(log), "panic")
		t.Fatalf("flanneld exited: %s", string(log[max(i, 0):]))
	}
	fc, _, fip6 := flannelContainerDual(t, flannelNode, flannelCNIConf(flannelNode, flannelNode.FlannelSubnetFile))
	xc := addContainer(t, weftNode, "wox")
	if !we.subnet6.Masked().Contains(xc.IPv6) || xc.IP != xc.IPv6 {
		t.Fatalf("weft's plugin gave %s, want an IPv6 address in %s only", xc.Result, we.subnet6)
	}
	// weftd installed flanneld's lease as flanneld does for its peers.
	gw := fe.subnet6.Masked().Addr().String()
	for _, c := range []struct{ args, want string }{
		{"ip -6 route show dev flannel-v6.1", fe.subnet6.Masked().String() + " via " + gw},
		{"ip -6 neigh show dev flannel-v6.1", gw + " lladdr"},
		{"bridge fdb show dev flannel-v6.1", "dst " + v6[1] + " self permanent"},
	} {
		args := strings.Fields(c.args)
		if out := runIn(t, ctx, weftNode.Host.NS, args[0], args[1:]...); !strings.Contains(out, c.want) {
			t.Errorf("weftd node: %s: want %q in:\n%s", c.args, c.want, out)
		}
	}
	// weftd node -> flanneld node: the echo requests of weft's container
	// arrive in flannel's container through both kernels' flannel-v6.1.
	// (Retried for 20 s: the container's address may still be tentative,
	// duplicate address detection, when the first requests arrive.)
	count := countICMPFrom(t, fc, xc.IPv6)
	err = testbed.WaitFor(ctxFor(t, 20*time.Second), 500*time.Millisecond, func() error {
		_, _ = xc.NS.Run(ctx, "ping", "-6", "-c", "5", "-i", "0.2", "-W", "1", fip6.String())
		if n := count(); n < 5 {
			return fmt.Errorf("flanneld node's container received %d ICMPv6 packets from weft's container %s, want >= 5", n, xc.IPv6)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// The way back is flanneld's: v0.28.10 in etcd mode marks every lease
	// EnableIPv4 (registry.go) and so handles a peer's lease through its
	// IPv4 side, whose device an IPv6-only network does not have: it
	// installs nothing for the peer (weftd's or another flanneld's) and
	// handles no further lease event. This holds as long as flanneld has
	// that defect; when a fixed flanneld installs the route, this test
	// fails here: ping -6 and a transfer both ways then belong here.
	if out := runIn(t, ctx, flannelNode.Host.NS, "ip", "-6", "route", "show", we.subnet6.Masked().String()); strings.TrimSpace(out) != "" {
		t.Errorf("flanneld now routes weftd's subnet (%q): its IPv6-only etcd mode works; make this test ping -6 and transfer both ways", out)
	}
}
