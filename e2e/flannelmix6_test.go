//go:build !unit

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/vxlan"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/testbed/flannel"
)

// dualStackVXLANConfig is issue 21's network on flannel's vxlan backend.
const dualStackVXLANConfig = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"vxlan"}}`

// mixedFlannelBed is the set-up the mixed weftd and flanneld IPv6 tests
// share: two hosts with the underlay addresses v6 (2001:db8::1 and ::2) beside
// their IPv4 ones, flannel's etcd in host 1, a stopped weft cluster on
// flannel's prefix with weftArgs added to every weftd, and config at
// flannel's config key. Node 0 is the weft node, node 1 the flanneld node.
func mixedFlannelBed(t *testing.T, name, config string, weftArgs ...string) (c *cluster.Cluster, etcd string, v6 []string) {
	t.Helper()
	bed := testbed.ForTest(t, name, 2)
	ctx := ctxFor(t, time.Minute)
	v6 = []string{"2001:db8::1", "2001:db8::2"}
	for i, h := range bed.Hosts {
		runIn(t, ctx, h.NS, "ip", "addr", "add", v6[i]+"/64", "dev", h.Dev, "nodad")
	}
	etcd = flannel.StartEtcd(t, bed.Hosts[0])
	opts := weftOnFlannelPrefix(etcd)
	opts.ExtraArgs = append(opts.ExtraArgs, weftArgs...)
	c = newStoppedClusterOn(t, bed, opts)
	cli := etcdClientIn(t, c.Nodes[0].Host.NS, etcd)
	if _, err := cli.Put(ctx, flannel.DefaultPrefix+"/config", config); err != nil {
		t.Fatal(err)
	}
	return c, etcd, v6
}

// Issue 21 acceptance for vxlan: a flanneld node (the real flanneld
// v0.28.10, dual stack, --public-ipv6) and a weft node share a dual-stack
// vxlan network on flannel's etcd prefix. The weft node is weftd's vxlan
// backend driven as weftd drives it (its lease from subnet.Manager with
// the backend's LeaseAttrs, Start, the lease watcher feeding Apply, the
// flannel subnet file weftd writes), because weftd's dual-stack wiring
// (--public-ipv6) is another part of issue 21. Containers on both nodes,
// attached by flannel's CNI plugin, get both families and reach each
// other with ping -6 and ping both ways, through flannel-v6.1 and
// flannel.1 on both kernels.
func TestMixedWeftAndFlanneldDualStack(t *testing.T) {
	bin := flanneldBin(t)
	ctx := ctxFor(t, 4*time.Minute)
	c, etcd, v6 := mixedFlannelBed(t, "wm6", dualStackVXLANConfig)
	weftNode, flannelNode := c.Nodes[0], c.Nodes[1]
	cli := etcdClientIn(t, weftNode.Host.NS, etcd)

	// The flanneld node.
	since := time.Now().Add(-time.Second)
	p, err := flannel.Start(c.Bed, flannelNode.Host, bin, filepath.Join(flannelNode.Dir, "flanneld.log"),
		flannel.Options{Etcd: etcd, SubnetFile: flannelNode.FlannelSubnetFile, Extra: []string{"--public-ipv6=" + v6[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flannel.WaitSubnetFile(ctxFor(t, time.Minute), p, flannelNode.FlannelSubnetFile, since); err != nil {
		t.Fatalf("%v\n%s", err, tailFile(p.LogPath))
	}
	fe := readFlannelEnv(t, flannelNode.FlannelSubnetFile)
	if !fe.subnet6.IsValid() {
		t.Fatalf("flanneld wrote no IPv6 subnet:\n%s", tailFile(p.LogPath))
	}

	// The weft node.
	mgr := subnet.NewManager(cli, subnet.Options{Prefix: flannel.DefaultPrefix, TTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	cfg, err := mgr.GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := weftNode.Host
	var be *vxlan.Backend
	var lease subnet.Lease
	err = ns.WithNetNSPath(h.NS.Path(), func(ns.NetNS) error {
		link, err := netlink.LinkByName(h.Dev)
		if err != nil {
			return err
		}
		b, err := vxlan.Factory().New(backend.Node{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Underlay: backend.Underlay{Name: h.Dev, Index: link.Attrs().Index, MTU: link.Attrs().MTU,
				PublicIP: h.IP, PublicIPv6: netip.MustParseAddr(v6[0])}})
		if err != nil {
			return err
		}
		be = b.(*vxlan.Backend)
		t.Cleanup(func() { be.Close() })
		attrs, err := be.LeaseAttrs()
		if err != nil {
			return err
		}
		if lease, err = mgr.AcquireLease(ctx, cfg, attrs); err != nil {
			return err
		}
		return be.Start(ctx, lease)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !lease.IPv6Subnet.IsValid() {
		t.Fatalf("weft node's lease %+v has no IPv6 subnet", lease)
	}
	wctx, cancel := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- mgr.WatchLeases(wctx, cfg, lease.Primary(), be.Apply) }()
	t.Cleanup(func() { cancel(); <-watched })
	// What weftd --flannel-subnet-file writes for flannel's CNI plugin.
	first := func(p netip.Prefix) netip.Prefix { return netip.PrefixFrom(p.Masked().Addr().Next(), p.Bits()) }
	if err := os.MkdirAll(filepath.Dir(weftNode.FlannelSubnetFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := subnetfile.WriteFlannel(weftNode.FlannelSubnetFile, subnetfile.Env{Network: cfg.Network, Subnet: first(lease.Subnet),
		IPv6Network: cfg.IPv6Network, IPv6Subnet: first(lease.IPv6Subnet), MTU: be.MTU()}); err != nil {
		t.Fatal(err)
	}

	// Each kernel has the other's IPv6 entries, as flanneld installs them.
	type side struct {
		host    *testbed.Host
		otherV6 string
		other6  netip.Prefix
	}
	for _, s := range []side{{weftNode.Host, v6[1], fe.subnet6.Masked()}, {flannelNode.Host, v6[0], lease.IPv6Subnet.Masked()}} {
		err := testbed.WaitFor(ctxFor(t, 30*time.Second), 200*time.Millisecond, func() error {
			out, err := s.host.NS.Run(ctx, "ip", "-6", "route", "show", "dev", "flannel-v6.1")
			if err != nil || !strings.Contains(out, s.other6.String()+" via "+s.other6.Addr().String()) || !strings.Contains(out, "onlink") {
				return fmt.Errorf("routes on flannel-v6.1: %s (%v)", out, err)
			}
			fdb, err := s.host.NS.Run(ctx, "bridge", "fdb", "show", "dev", "flannel-v6.1")
			if err != nil || !strings.Contains(fdb, "dst "+s.otherV6+" self permanent") {
				return fmt.Errorf("FDB of flannel-v6.1: %s (%v)", fdb, err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v\nflanneld:\n%s", s.host.NS.Name, err, tailFile(p.LogPath))
		}
	}

	wc, wip, wip6 := flannelContainerDual(t, weftNode, flannelCNIConf(weftNode, weftNode.FlannelSubnetFile))
	fc, fip, fip6 := flannelContainerDual(t, flannelNode, flannelCNIConf(flannelNode, flannelNode.FlannelSubnetFile))
	for _, pr := range []struct {
		from    *testbed.NS
		to, to6 netip.Addr
		what    string
	}{{wc, fip, fip6, "weft node's container -> flanneld node's"}, {fc, wip, wip6, "flanneld node's container -> weft node's"}} {
		if out, err := pr.from.Run(ctx, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", pr.to6.String()); err != nil {
			t.Errorf("%s: ping -6 %s: %v\n%s", pr.what, pr.to6, err, out)
		}
		if out, err := pr.from.Run(ctx, "ping", "-c", "3", "-i", "0.2", "-W", "2", pr.to.String()); err != nil {
			t.Errorf("%s: ping %s: %v\n%s", pr.what, pr.to, err, out)
		}
	}
	if peers := be.Peers(); len(peers) != 1 || peers[0].IPv6Subnet != fe.subnet6.Masked() {
		t.Errorf("weft node's peers %+v, want flanneld's node with IPv6 subnet %s", peers, fe.subnet6.Masked())
	}
	if t.Failed() {
		t.Logf("flanneld log:\n%s", tailFile(p.LogPath))
	}
}

// The same with weftd itself on the weft node (--public-ipv6): its lease
// at the dual key, flannel-v6.1, its flannel subnet file with both
// families; a container attached by flannel's plugin on the flanneld node
// and one attached by weft's plugin on the weftd node ping each other
// over IPv6 and IPv4 both ways.
func TestMixedWeftdAndFlanneldDualStack(t *testing.T) {
	bin := flanneldBin(t)
	ctx := ctxFor(t, 4*time.Minute)
	c, etcd, v6 := mixedFlannelBed(t, "wd6", dualStackVXLANConfig, "--public-ipv6", "2001:db8::1")
	weftNode, flannelNode := c.Nodes[0], c.Nodes[1]
	if err := weftNode.Start(); err != nil {
		t.Fatal(err)
	}
	if err := weftNode.WaitReady(ctxFor(t, time.Minute)); err != nil {
		t.Fatalf("%v\n%s", err, weftNode.Log(40))
	}
	since := time.Now().Add(-time.Second)
	p, err := flannel.Start(c.Bed, flannelNode.Host, bin, filepath.Join(flannelNode.Dir, "flanneld.log"),
		flannel.Options{Etcd: etcd, SubnetFile: flannelNode.FlannelSubnetFile, Extra: []string{"--public-ipv6=" + v6[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flannel.WaitSubnetFile(ctxFor(t, time.Minute), p, flannelNode.FlannelSubnetFile, since); err != nil {
		t.Fatalf("%v\n%s", err, tailFile(p.LogPath))
	}
	fe, we := readFlannelEnv(t, flannelNode.FlannelSubnetFile), readFlannelEnv(t, weftNode.FlannelSubnetFile)
	if !fe.subnet6.IsValid() || !we.subnet6.IsValid() {
		t.Fatalf("IPv6 subnets: flanneld %v, weftd %v", fe.subnet6, we.subnet6)
	}
	checkVXLANDevice(t, weftNode.Host)
	if out := runIn(t, ctx, weftNode.Host.NS, "ip", "-d", "link", "show", "flannel-v6.1"); !strings.Contains(out, "vxlan id 1 local "+v6[0]) {
		t.Errorf("weftd's flannel-v6.1:\n%s", out)
	}
	waitPeersOf(t, weftNode, 1)
	fc, fip, fip6 := flannelContainerDual(t, flannelNode, flannelCNIConf(flannelNode, flannelNode.FlannelSubnetFile))
	// weft's own plugin on the weftd node (a node has one plugin's bridge:
	// weft's refuses a subnet flannel's cni0 already holds).
	xc := addContainer(t, weftNode, "wdx")
	var res struct {
		IPs []struct{ Address string } `json:"ips"`
	}
	var xip6 netip.Addr
	if err := json.Unmarshal(xc.Result, &res); err != nil {
		t.Fatal(err)
	}
	for _, a := range res.IPs {
		if q, err := netip.ParsePrefix(a.Address); err == nil && q.Addr().Is6() {
			xip6 = q.Addr()
		}
	}
	if !we.subnet6.Masked().Contains(xip6) {
		t.Fatalf("weft's plugin gave %s, no IPv6 address in %s", xc.Result, we.subnet6)
	}
	for _, pr := range []struct {
		from    *testbed.NS
		to, to6 netip.Addr
		what    string
	}{{xc.NS, fip, fip6, "weftd node's container (weft's plugin) -> flanneld node's (flannel's plugin)"},
		{fc, xc.IP, xip6, "flanneld node's container -> weftd node's"}} {
		if out, err := pr.from.Run(ctx, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", pr.to6.String()); err != nil {
			t.Errorf("%s: ping -6 %s: %v\n%s", pr.what, pr.to6, err, out)
		}
		if out, err := pr.from.Run(ctx, "ping", "-c", "3", "-i", "0.2", "-W", "2", pr.to.String()); err != nil {
			t.Errorf("%s: ping %s: %v\n%s", pr.what, pr.to, err, out)
		}
	}
	if t.Failed() {
		t.Logf("flanneld log:\n%s\nweftd log:\n%s", tailFile(p.LogPath), weftNode.Log(40))
	}
}
