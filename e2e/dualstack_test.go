//go:build !unit

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// issue21Network is issue 21's acceptance network with the backend to run.
func issue21Network(backend string) string {
	return `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"` + backend + `"}}`
}

// Issue 21's acceptance on udp: two dual-stack hosts (underlay 192.0.2.i
// and 2001:db8::i), the network of the issue. Each lease sits at flannel's
// dual key with PublicIPv6; each container gets an address from its
// node's IPv6 subnet besides its IPv4 one; ping -6 and TCP over IPv6 work
// across hosts (and IPv4 still does).
func TestDualStackTwoHosts(t *testing.T) {
	dualStackTwoHosts(t, "udp")
}

func dualStackTwoHosts(t *testing.T, backend string) {
	bed := testbed.ForTestWith(t, "wd", 2, testbed.Options{IPv6: true})
	c := newStoppedClusterOn(t, bed, cluster.Options{NetworkConfig: issue21Network(backend)})
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)

	// Leases at the dual key, with both public addresses.
	cli := etcdClientIn(t, bed.Hosts[0].NS, c.EtcdEndpoint())
	resp, err := cli.Get(ctx, "/weft/network/subnets/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 2 {
		t.Fatalf("%d lease keys, want 2", len(resp.Kvs))
	}
	subnets6 := map[int]netip.Prefix{}
	for _, n := range c.Nodes {
		env, err := n.Subnet()
		if err != nil {
			t.Fatal(err)
		}
		if !env.IPv6Subnet.IsValid() || env.IPv6Network != netip.MustParsePrefix("fd10:244::/56") {
			t.Fatalf("node %d subnet file without IPv6: %+v", n.Index+1, env)
		}
		sub4, sub6 := env.Subnet.Masked(), env.IPv6Subnet.Masked()
		subnets6[n.Index] = sub6
		key := fmt.Sprintf("/weft/network/subnets/%s-%d&%s-%d", sub4.Addr(), sub4.Bits(), sub6.Addr(), sub6.Bits())
		var value string
		for _, kv := range resp.Kvs {
			if string(kv.Key) == key {
				value = string(kv.Value)
			}
		}
		var attrs struct{ PublicIP, PublicIPv6, BackendType string }
		if err := json.Unmarshal([]byte(value), &attrs); err != nil {
			t.Fatalf("node %d: no lease at the dual key %s (%v); keys: %s", n.Index+1, key, err, keysOf(resp))
		}
		if attrs.PublicIP != n.Host.IP.String() || attrs.PublicIPv6 != n.Host.IPv6.String() || attrs.BackendType != backend {
			t.Errorf("node %d lease %s = %s", n.Index+1, key, value)
		}
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Node.IPv6Subnet != sub6.String() || st.Node.PublicIPv6 != n.Host.IPv6.String() || len(st.Peers) != 1 || st.Peers[0].IPv6Subnet == "" {
			t.Errorf("node %d /status: %+v", n.Index+1, st)
		}
	}

	// Containers with an address from their node's IPv6 subnet.
	a := addContainer(t, c.Nodes[0], "wda")
	b := addContainer(t, c.Nodes[1], "wdb")
	for i, ctr := range []*cluster.Container{a, b} {
		if !ctr.IPv6.IsValid() || !subnets6[i].Contains(ctr.IPv6) || !ctr.IPv6.IsGlobalUnicast() {
			t.Fatalf("container %s on node %d: IPv6 %v, want a global address in %s; result %s", ctr.Name, i+1, ctr.IPv6, subnets6[i], ctr.Result)
		}
	}
	for _, p := range [][2]*cluster.Container{{a, b}, {b, a}} {
		src, dst := p[0], p[1]
		if out, err := src.NS.Run(ctx, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", dst.IPv6.String()); err != nil {
			t.Errorf("ping -6 %s -> %s: %v\n%s", src.IPv6, dst.IPv6, err, out)
		}
		if out, err := src.Ping(ctx, dst.IP, 2); err != nil {
			t.Errorf("ping %s -> %s: %v\n%s", src.IP, dst.IP, err, out)
		}
	}
	// The way node 1 sends to node 2's container: into weft0 (udp), a
	// route via node 2's IPv6 underlay address (host-gw).
	route := runIn(t, ctx, c.Nodes[0].Host.NS, "ip", "-6", "route", "get", b.IPv6.String())
	want := map[string]string{"udp": "dev weft0", "host-gw": "via " + c.Nodes[1].Host.IPv6.String(),
		"wireguard": "dev weft0", "vxlan": "dev flannel-v6.1"}[backend]
	if !strings.Contains(route, want) {
		t.Errorf("route to %s on node 1: %q, want %q", b.IPv6, route, want)
	}
	if t.Failed() {
		return
	}
	transfer(t, a.NS, b.NS, b.IPv6.String(), 20<<20)
}

func keysOf(resp *clientv3.GetResponse) string {
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return strings.Join(keys, ", ")
}

// The same on host-gw: IPv6 routes to the peers' IPv6 subnets via their
// IPv6 underlay addresses.
func TestDualStackTwoHostsHostGW(t *testing.T) {
	dualStackTwoHosts(t, "host-gw")
}

// The same on wireguard (issue 21: allowed IPs of both families, one
// device) and on vxlan (flannel's second device flannel-v6.1 over the
// IPv6 underlay).
func TestDualStackTwoHostsWireGuard(t *testing.T) {
	dualStackTwoHosts(t, "wireguard")
}

func TestDualStackTwoHostsVXLAN(t *testing.T) {
	dualStackTwoHosts(t, "vxlan")
}

// Issue 21: an IPv6-only network ("EnableIPv4": false) on an IPv6-only
// underlay (the hosts have 2001:db8::i and no IPv4 address): leases at
// flanneld's IPv6-only key "0.0.0.0-0&<subnet>" with PublicIPv6 and no
// PublicIP, containers with an IPv6 address only, ping -6 and TCP across.
func TestIPv6OnlyUnderlayAndNetwork(t *testing.T) {
	ipv6OnlyTwoHosts(t, "udp")
}

// The same on vxlan (flanneld v0.28.10's IPv6-only vxlan: flannel-v6.1
// alone, the lease with PublicIPv6 and BackendV6Data only).
func TestIPv6OnlyUnderlayAndNetworkVXLAN(t *testing.T) {
	ipv6OnlyTwoHosts(t, "vxlan")
}

func ipv6OnlyTwoHosts(t *testing.T, backend string) {
	bed := testbed.ForTestWith(t, "wo", 2, testbed.Options{IPv6Only: true})
	c := newStoppedClusterOn(t, bed, cluster.Options{NetworkConfig: `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"` + backend + `"}}`})
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	cli := etcdClientIn(t, bed.Hosts[0].NS, c.EtcdEndpoint())
	for _, n := range c.Nodes {
		env, err := n.Subnet()
		if err != nil {
			t.Fatal(err)
		}
		if env.Subnet.IsValid() || !env.IPv6Subnet.IsValid() {
			t.Fatalf("node %d subnet file: %+v", n.Index+1, env)
		}
		sub6 := env.IPv6Subnet.Masked()
		key := fmt.Sprintf("/weft/network/subnets/0.0.0.0-0&%s-%d", sub6.Addr(), sub6.Bits())
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("node %d: no lease at %s: %v", n.Index+1, key, err)
		}
		want := fmt.Sprintf(`{"PublicIPv6":%q,"BackendType":"udp","BackendData":{"Port":8285}}`, n.Host.IPv6)
		if backend == "vxlan" {
			want = fmt.Sprintf(`{"PublicIPv6":%q,"BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"`, n.Host.IPv6)
		}
		if v := string(resp.Kvs[0].Value); !strings.HasPrefix(v, want) || backend == "udp" && v != want {
			t.Errorf("node %d lease %s = %s, want %s", n.Index+1, key, v, want)
		}
	}
	a := addContainer(t, c.Nodes[0], "woa")
	b := addContainer(t, c.Nodes[1], "wob")
	if !b.IPv6.IsValid() || b.IP != b.IPv6 {
		t.Fatalf("container on node 2: IP %v IPv6 %v, want an IPv6 address only; result %s", b.IP, b.IPv6, b.Result)
	}
	for _, p := range [][2]*cluster.Container{{a, b}, {b, a}} {
		if out, err := p[0].NS.Run(ctx, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", p[1].IPv6.String()); err != nil {
			t.Errorf("ping -6 %s -> %s: %v\n%s", p[0].IPv6, p[1].IPv6, err, out)
		}
	}
	route := runIn(t, ctx, c.Nodes[0].Host.NS, "ip", "-6", "route", "get", b.IPv6.String())
	if want := map[string]string{"udp": "dev weft0", "vxlan": "dev flannel-v6.1"}[backend]; !strings.Contains(route, want) {
		t.Errorf("route to %s on node 1: %q, want %q", b.IPv6, route, want)
	}
	if t.Failed() {
		return
	}
	transfer(t, a.NS, b.NS, b.IPv6.String(), 20<<20)
}
