//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/nodestatus"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A stray etcd writer against two live dual-stack weftd (udp): keys that
// name a node's subnet a second time (its IPv4 subnet with another IPv6
// one, its IPv6 subnet under another IPv4 one, the other node's IPv6
// subnet, its IPv6 subnet alone and as "0.0.0.0-0&..."), and a lease of a
// free subnet with PublicIPv6 set to a node's address and garbage in
// BackendV6Data. Each node keeps exactly the real peer for the real
// subnets (endpoint the peer's), the containers keep talking in both
// families, and deleting the stray keys removes no peer.
func TestDualStackStrayKeysLive(t *testing.T) {
	bed := testbed.ForTestWith(t, "wy", 2, testbed.Options{IPv6: true})
	c := newStoppedClusterOn(t, bed, cluster.Options{NetworkConfig: issue21Network("udp")})
	ctx := ctxFor(t, 3*time.Minute)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	var sub4, sub6 [2]netip.Prefix
	for i, n := range c.Nodes {
		env, err := n.Subnet()
		if err != nil {
			t.Fatal(err)
		}
		sub4[i], sub6[i] = env.Subnet.Masked(), env.IPv6Subnet.Masked()
	}
	// Subnets no node holds, for the stray keys' other halves.
	free4 := func(x int) string {
		for ; ; x++ {
			p := netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", x))
			if p != sub4[0] && p != sub4[1] {
				return fmt.Sprintf("10.244.%d.0-24", x)
			}
		}
	}
	free6 := func(x int) string {
		for ; ; x++ {
			p := netip.MustParsePrefix(fmt.Sprintf("fd10:244:0:%x::/64", x))
			if p != sub6[0] && p != sub6[1] {
				return fmt.Sprintf("fd10:244:0:%x::-64", x)
			}
		}
	}
	key6 := func(p netip.Prefix) string { return fmt.Sprintf("%s-%d", p.Addr(), p.Bits()) }
	key4 := func(p netip.Prefix) string { return fmt.Sprintf("%s-%d", p.Addr(), p.Bits()) }
	const value = `{"PublicIP":"192.0.2.99","PublicIPv6":"2001:db8::99","BackendType":"udp","BackendData":{"Port":8285}}`
	prefix := "/weft/network/subnets/"
	shared := []string{
		prefix + key4(sub4[1]) + "&" + free6(0xf0), // node 2's IPv4 subnet, another IPv6 one
		prefix + free4(250) + "&" + key6(sub6[1]),  // node 2's IPv6 subnet under another IPv4 one
		prefix + free4(240) + "&" + key6(sub6[0]),  // node 1's IPv6 subnet likewise
		prefix + key6(sub6[1]),                     // an IPv6-only key in a dual-stack network
		prefix + "0.0.0.0-0&" + key6(sub6[0]),      // flannel's IPv6-only form
	}
	cli := etcdClientIn(t, bed.Hosts[0].NS, c.EtcdEndpoint())
	for _, k := range shared {
		if _, err := cli.Put(ctx, k, value); err != nil {
			t.Fatal(err)
		}
	}
	victim6 := c.Nodes[1].Host.IPv6.String()
	freeLease := prefix + free4(230) + "&" + free6(0xe0)
	if _, err := cli.Put(ctx, freeLease, `{"PublicIP":"192.0.2.99","PublicIPv6":"`+victim6+`","BackendType":"udp","BackendData":{"Port":8285},"BackendV6Data":{"junk":[1,{"x":null}]}}`); err != nil {
		t.Fatal(err)
	}

	// checkPeers: node i's peers hold the other node's subnets at the
	// other node's endpoint only, and no peer names node i's own.
	checkPeers := func(when string) {
		t.Helper()
		for i, n := range c.Nodes {
			o := 1 - i
			var st nodestatus.Status
			err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
				var err error
				if st, err = n.Status(ctx); err != nil {
					return err
				}
				real := 0
				for _, p := range st.Peers {
					mine := p.Subnet == sub4[i].String() || p.IPv6Subnet == sub6[i].String()
					theirs := p.Subnet == sub4[o].String() || p.IPv6Subnet == sub6[o].String()
					if mine {
						return fmt.Errorf("a peer names this node's subnet: %+v", p)
					}
					if theirs {
						if p.Subnet != sub4[o].String() || p.IPv6Subnet != sub6[o].String() || !strings.HasPrefix(p.Endpoint, c.Nodes[o].Host.IP.String()+":") {
							return fmt.Errorf("the other node's subnets at %+v", p)
						}
						real++
					}
				}
				if real != 1 {
					return fmt.Errorf("%d peers with the other node's subnets, want 1", real)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: node %d: %v; peers %+v", when, i+1, err, st.Peers)
			}
		}
	}
	// Let both watches see every stray key (the free lease is a peer).
	if err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		for i, n := range c.Nodes {
			st, err := n.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Peers) < 2 {
				return fmt.Errorf("node %d: %d peers, the free stray lease not seen yet", i+1, len(st.Peers))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkPeers("with the stray keys")
	a := addContainer(t, c.Nodes[0], "wya")
	b := addContainer(t, c.Nodes[1], "wyb")
	talk := func(when string) {
		t.Helper()
		for _, p := range [][2]*cluster.Container{{a, b}, {b, a}} {
			for _, dst := range []string{p[1].IPv6.String(), p[1].IP.String()} {
				if out, err := p[0].NS.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst); err != nil {
					t.Errorf("%s: ping %s -> %s: %v\n%s", when, p[0].IP, dst, err, out)
				}
			}
		}
	}
	talk("with the stray keys")
	for _, k := range shared {
		if _, err := cli.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the watches see the deletions
	checkPeers("after deleting the stray keys")
	talk("after deleting the stray keys")
}
