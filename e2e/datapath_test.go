//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed/cluster"
)

func tunAddr(t *testing.T, n *cluster.Node) netip.Addr {
	t.Helper()
	a, err := n.TunAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Two hosts on a veth underlay: ping both ways between the hosts' overlay
// addresses and a 200 MB TCP transfer that must arrive byte-identical, with
// one queue and with a multi-queue data path (--queues 2).
func TestTwoHostsPingAndTransfer(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) {
			twoHostsPingAndTransfer(t, cluster.Options{Queues: queues})
		})
	}
	// With CoDel on the TUN queue set far below this machine's standing
	// queue, TCP segments are dropped while the stream runs, and the
	// transfer still arrives whole and in order.
	t.Run("aqm", func(t *testing.T) {
		opts := cluster.Options{ExtraArgs: []string{"--aqm-target", "50us", "--aqm-interval", "500us"}}
		c := twoHostsPingAndTransfer(t, opts)
		fams := metrics(t, c.Nodes[0])
		if n := dropCount(fams, "tx", "queue_delay"); n == 0 {
			t.Errorf("no TCP segment dropped by the AQM during a 200 MB transfer (drops: %s)", describeDrops(fams))
		} else {
			t.Logf("AQM drops during the transfer: %v", n)
		}
	})
	// The same over the encrypted backend (WireGuard, embedded).
	t.Run("wireguard", func(t *testing.T) {
		twoHostsPingAndTransfer(t, cluster.Options{NetworkConfig: wireGuardConfig})
	})
}

func twoHostsPingAndTransfer(t *testing.T, opts cluster.Options) *cluster.Cluster {
	c := newCluster(t, 2, opts)
	ctx := ctxFor(t, 2*time.Minute)
	a, b := c.Nodes[0], c.Nodes[1]
	if opts.Queues > 0 {
		requireQueues(t, c, opts.Queues)
	}
	// One ping allowed up to 7 s first: over the wireguard backend the
	// first handshake of a fresh pair is sometimes not answered and
	// wireguard-go sends the next initiation 5 s later (REKEY_TIMEOUT).
	// Seen on 2026-12-06 in 1-3 of 15 runs of the wireguard case, on
	// 837c96b as on later heads, not understood yet (session 9's note);
	// the pings after it must all be answered.
	runIn(t, ctx, a.Host.NS, "ping", "-c", "1", "-W", "7", tunAddr(t, b).String())
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", tunAddr(t, b).String())
	runIn(t, ctx, b.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "2", tunAddr(t, a).String())
	transfer(t, a.Host.NS, b.Host.NS, tunAddr(t, b).String(), 200<<20)
	return c
}

// Three hosts on a bridged underlay with containers attached by cnitool:
// every container reaches every other, and a destination in an unleased
// subnet of the network gets "Destination Net Unreachable" back.
func TestThreeHostsContainers(t *testing.T) {
	c := newCluster(t, 3, cluster.Options{})
	ctx := ctxFor(t, 2*time.Minute)
	var ctrs []*cluster.Container
	for _, n := range c.Nodes {
		ctrs = append(ctrs, addContainer(t, n, "wc"))
	}
	for _, src := range ctrs {
		for _, dst := range ctrs {
			if src == dst {
				continue
			}
			if out, err := src.Ping(ctx, dst.IP, 2); err != nil {
				t.Errorf("ping %s (node %d) -> %s (node %d): %v\n%s", src.IP, src.Node.Index+1, dst.IP, dst.Node.Index+1, err, out)
			}
		}
	}
	transfer(t, ctrs[0].NS, ctrs[2].NS, ctrs[2].IP.String(), 20<<20)

	unleased := unleasedAddr(t, c)
	out, err := ctrs[0].NS.Run(ctx, "ping", "-c", "1", "-W", "2", unleased.String())
	if err == nil {
		t.Fatalf("ping to an unleased subnet succeeded:\n%s", out)
	}
	if !strings.Contains(out, "Destination Net Unreachable") {
		t.Fatalf("ping to an unleased subnet: want \"Destination Net Unreachable\", got:\n%s", out)
	}
}

// unleasedAddr is an address in the network whose /24 no node holds.
func unleasedAddr(t *testing.T, c *cluster.Cluster) netip.Addr {
	t.Helper()
	used := map[netip.Prefix]bool{}
	for _, n := range c.Nodes {
		env, err := n.Subnet()
		if err != nil {
			t.Fatal(err)
		}
		used[env.Subnet.Masked()] = true
	}
	for third := 250; third > 1; third-- {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(third), 0}), 24)
		if !used[p] {
			return netip.AddrFrom4([4]byte{10, 244, byte(third), 7})
		}
	}
	t.Fatal("no unleased subnet")
	return netip.Addr{}
}
