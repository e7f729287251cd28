//go:build !unit

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// Issue 20: flannel's MTU override (Backend.MTU, flannel PR 1736) on the
// udp backend reaches the containers: with "MTU":1300 on a 1500 underlay
// the subnet files (weft's and flannel's) say 1268 (1300 less weft's 32
// bytes), weft0 and the containers' eth0 have MTU 1268, and across hosts a
// DF ping of exactly 1268 bytes passes while one byte more is refused at
// the container.
func TestMTUOverrideReachesContainers(t *testing.T) {
	const override, want = 1300, 1268
	c := newCluster(t, 2, cluster.Options{FlannelSubnetFile: true,
		NetworkConfig: fmt.Sprintf(`{"Network":"10.244.0.0/16","Backend":{"Type":"udp","MTU":%d}}`, override)})
	ctx := ctxFor(t, 2*time.Minute)
	var ctrs []*cluster.Container
	for _, n := range c.Nodes {
		if n.Host.MTU != 1500 {
			t.Fatalf("node %d underlay MTU %d, the test wants 1500", n.Index+1, n.Host.MTU)
		}
		env, err := n.Subnet()
		if err != nil || env.MTU != want {
			t.Errorf("node %d: WEFT_MTU %d (%v), want %d", n.Index+1, env.MTU, err, want)
		}
		if fe := readFlannelEnv(t, n.FlannelSubnetFile); fe.mtu != want {
			t.Errorf("node %d: FLANNEL_MTU %d, want %d", n.Index+1, fe.mtu, want)
		}
		if got := linkMTU(t, n.Host.NS, "weft0"); got != want {
			t.Errorf("node %d: weft0 MTU %d, want %d", n.Index+1, got, want)
		}
		ctr := addContainer(t, n, "mtu")
		if got := linkMTU(t, ctr.NS, "eth0"); got != want {
			t.Errorf("node %d: container eth0 MTU %d, want %d", n.Index+1, got, want)
		}
		ctrs = append(ctrs, ctr)
	}
	// ICMP payload = MTU - IPv4 20 - ICMP 8.
	for _, pair := range [][2]*cluster.Container{{ctrs[0], ctrs[1]}, {ctrs[1], ctrs[0]}} {
		src, dst := pair[0], pair[1]
		if out, err := src.NS.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", fmt.Sprint(want-28), dst.IP.String()); err != nil {
			t.Errorf("DF ping of %d bytes node %d -> node %d: %v\n%s", want, src.Node.Index+1, dst.Node.Index+1, err, out)
		}
		out, err := src.NS.Run(ctx, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(want-27), dst.IP.String())
		if err == nil || !strings.Contains(out, fmt.Sprintf("mtu=%d", want)) {
			t.Errorf("DF ping of %d bytes node %d -> node %d: want refused with mtu=%d, got %v:\n%s", want+1, src.Node.Index+1, dst.Node.Index+1, want, err, out)
		}
	}
}

// linkMTU is the MTU of link name in ns.
func linkMTU(t *testing.T, ns *testbed.NS, name string) int {
	t.Helper()
	out, err := ns.Run(ctxFor(t, 10*time.Second), "ip", "-o", "link", "show", "dev", name)
	if err != nil {
		t.Fatalf("%s: MTU of %s: %v\n%s", ns.Name, name, err, out)
	}
	_, after, ok := strings.Cut(out, " mtu ")
	var mtu int
	if _, err := fmt.Sscan(after, &mtu); !ok || err != nil {
		t.Fatalf("%s: no MTU in %q", ns.Name, out)
	}
	return mtu
}
