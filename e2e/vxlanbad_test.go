//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/backend/vxlan"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// Issue 20, bad input: odd leases written by a stray etcd writer while two
// weftd vxlan nodes run (as a misbehaving flanneld or a hand edit would
// write them): a malformed VtepMAC, none, a group address, another VNI,
// another backend type, a copy of a working node's VtepMAC, a copy of the
// node's own. Each is skipped, counted once by reason (/status) and logged
// once, leaves nothing in the kernel, and the two nodes' containers go on
// talking; a copied MAC never takes the working node's FDB entry. A lease
// that turns good becomes a peer, and one that turns bad again goes away.
func TestVXLANOddLeasesLive(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: vxlanConfig})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ca, cb := addContainer(t, n1, "wba"), addContainer(t, n2, "wbb")
	ctx := ctxFor(t, 4*time.Minute)
	cli := etcdClientIn(t, n1.Host.NS, c.EtcdEndpoint())
	s1, s2 := nodeSubnet(t, n1), nodeSubnet(t, n2)
	macs := map[*cluster.Node]string{}
	for _, l := range leasesAt(t, n1.Host, c.EtcdEndpoint(), "/weft/network") {
		for _, n := range c.Nodes {
			if l.PublicIP == n.Host.IP.String() {
				macs[n] = l.BackendData.VtepMAC
			}
		}
	}
	if macs[n1] == "" || macs[n2] == "" {
		t.Fatalf("VtepMACs %v", macs)
	}
	talk := func(when string) {
		t.Helper()
		for _, p := range [][2]*cluster.Container{{ca, cb}, {cb, ca}} {
			if out, err := p[0].Ping(ctx, p[1].IP, 2); err != nil {
				t.Errorf("%s: %s -> %s: %v\n%s", when, p[0].IP, p[1].IP, err, out)
			}
		}
	}
	talk("before")

	// Free /24s, lowest first: the copied MAC gets a lower subnet than
	// its owner whenever there is one, the case a lower-subnet-wins rule
	// would lose.
	var free []netip.Prefix
	for third := 1; third < 255 && len(free) < 7; third++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(third), 0}), 24)
		if p != s1 && p != s2 {
			free = append(free, p)
		}
	}
	vx := func(ip, data string) string {
		return fmt.Sprintf(`{"PublicIP":%q,"BackendType":"vxlan","BackendData":%s}`, ip, data)
	}
	odd := []struct {
		value, reason string
	}{
		{vx("192.0.2.50", `{"VNI":1,"VtepMAC":"not-a-mac"}`), vxlan.SkipData},
		{vx("192.0.2.51", `{"VNI":1}`), vxlan.SkipData},
		{vx("192.0.2.52", `{"VNI":1,"VtepMAC":"ff:ff:ff:ff:ff:ff"}`), vxlan.SkipData},
		{vx("192.0.2.53", `{"VNI":2,"VtepMAC":"0a:00:00:00:00:53"}`), vxlan.SkipVNI},
		{`{"PublicIP":"192.0.2.54","BackendType":"udp","BackendData":{"Port":8285}}`, vxlan.SkipBackend},
		{vx("192.0.2.55", `{"VNI":1,"VtepMAC":"`+macs[n2]+`"}`), vxlan.SkipMAC},
		{vx("192.0.2.56", `{"VNI":1,"VtepMAC":"`+macs[n1]+`"}`), vxlan.SkipMAC},
	}
	// With an etcd lease, as flanneld writes them.
	grant, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range odd {
		if _, err := cli.Put(ctx, leaseKey(free[i]), o.value, clientv3.WithLease(grant.ID)); err != nil {
			t.Fatal(err)
		}
	}
	wantSkips := map[string]float64{vxlan.SkipData: 3, vxlan.SkipVNI: 1, vxlan.SkipBackend: 1, vxlan.SkipMAC: 2, vxlan.SkipPublicIP: 0}
	checkSkips := func(when string, want map[string]float64) {
		t.Helper()
		for _, n := range c.Nodes {
			err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
				got := skipCounters(t, n)
				for r, w := range want {
					if got[r] != w {
						return fmt.Errorf("skipped_leases %v, want %v", got, want)
					}
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s: node %d: %v\n%s", when, n.Index+1, err, n.Log(30))
			}
		}
	}
	checkSkips("odd leases written", wantSkips)
	checkKernel := func(when string, extra map[*cluster.Node][]netip.Prefix) {
		t.Helper()
		for _, p := range [][2]*cluster.Node{{n1, n2}, {n2, n1}} {
			n, other := p[0], p[1]
			want := []string{nodeSubnet(t, other).String() + "=" + other.Host.IP.String()}
			for _, e := range extra[n] {
				want = append(want, e.String()+"="+"192.0.2.50")
			}
			slices.Sort(want)
			// The counters move at the start of a sync, the peers and the
			// kernel at its end: wait for the peers.
			if err := testbed.WaitFor(ctxFor(t, 10*time.Second), 100*time.Millisecond, func() error {
				if got := vxlanPeers(t, n); !slices.Equal(got, want) {
					return fmt.Errorf("peers %v, want %v", got, want)
				}
				return nil
			}); err != nil {
				t.Errorf("%s: node %d: %v", when, n.Index+1, err)
			}
			fdb := runIn(t, ctx, n.Host.NS, "bridge", "fdb", "show", "dev", "flannel.1")
			if !strings.Contains(fdb, macs[other]+" dst "+other.Host.IP.String()) {
				t.Errorf("%s: node %d lost %s's FDB entry:\n%s", when, n.Index+1, other.Host.IP, fdb)
			}
			neigh := runIn(t, ctx, n.Host.NS, "ip", "neigh", "show", "dev", "flannel.1")
			routes := runIn(t, ctx, n.Host.NS, "ip", "route", "show", "dev", "flannel.1")
			for i := range odd {
				if slices.Contains(extra[n], free[i]) {
					continue
				}
				ip := fmt.Sprintf("192.0.2.5%d", i)
				if strings.Contains(fdb, "dst "+ip+" ") || strings.Contains(neigh, free[i].Addr().String()+" ") ||
					strings.Contains(routes, free[i].String()) {
					t.Errorf("%s: node %d has kernel state for odd lease %s (%s):\nfdb:\n%s\nneigh:\n%s\nroutes:\n%s", when, n.Index+1, free[i], ip, fdb, neigh, routes)
				}
			}
		}
	}
	checkKernel("odd leases written", nil)
	talk("odd leases written")

	// Logged once each, counted once each, across two repair rounds.
	time.Sleep(2*vxlan.CheckInterval + time.Second)
	checkSkips("two check intervals later", wantSkips)
	for _, n := range c.Nodes {
		lines := logSince(t, n, 0)
		for i := range odd {
			if got := countLines(lines, `msg="ignoring lease"`, "subnet="+free[i].String()+" "); got != 1 {
				t.Errorf("node %d logged odd lease %s %d times, want once", n.Index+1, free[i], got)
			}
		}
	}

	// The malformed lease turns good: a peer. Then bad again: gone from
	// the kernel, counted and logged again.
	if _, err := cli.Put(ctx, leaseKey(free[0]), vx("192.0.2.50", `{"VNI":1,"VtepMAC":"0a:00:00:00:00:50"}`), clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	good := map[*cluster.Node][]netip.Prefix{n1: {free[0]}, n2: {free[0]}}
	if err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		for _, n := range c.Nodes {
			if got := vxlanPeers(t, n); len(got) != 2 {
				return fmt.Errorf("node %d peers %v", n.Index+1, got)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if out := runIn(t, ctx, n.Host.NS, "ip", "route", "show", free[0].String()); !strings.Contains(out, "via "+free[0].Addr().String()+" dev flannel.1 onlink") {
			t.Errorf("node %d: the lease that turned good has no route: %q", n.Index+1, out)
		}
	}
	checkKernel("a lease turned good", good)
	if _, err := cli.Put(ctx, leaseKey(free[0]), vx("192.0.2.50", `{"VNI":1,"VtepMAC":"not-a-mac"}`), clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	wantSkips[vxlan.SkipData]++
	checkSkips("the lease turned bad again", wantSkips)
	checkKernel("the lease turned bad again", nil)
	talk("the lease turned bad again")

	// The stray keys go: counters never go back, the nodes stay as they were.
	if _, err := cli.Revoke(ctx, grant.ID); err != nil {
		t.Fatal(err)
	}
	if err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		resp, err := cli.Get(ctx, "/weft/network/subnets/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 2 {
			return fmt.Errorf("%d leases (%v)", resp.Count, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	checkSkips("the odd leases gone", wantSkips)
	checkKernel("the odd leases gone", nil)
	talk("the odd leases gone")
}

// skipCounters is node n's vxlan skipped_leases_<reason> counters
// (/status).
func skipCounters(t *testing.T, n *cluster.Node) map[string]float64 {
	t.Helper()
	st, err := n.Status(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("node %d: %v", n.Index+1, err)
	}
	out := map[string]float64{}
	for _, r := range vxlan.SkipReasons {
		v, ok := st.Counters["skipped_leases_"+r].(float64)
		if !ok {
			t.Fatalf("node %d: /status counters have no skipped_leases_%s: %v", n.Index+1, r, st.Counters)
		}
		out[r] = v
	}
	return out
}

// vxlanPeers is node n's /status peers as "subnet=endpoint" (a vxlan
// peer's endpoint is its PublicIP), sorted.
func vxlanPeers(t *testing.T, n *cluster.Node) []string {
	t.Helper()
	st, err := n.Status(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("node %d: %v", n.Index+1, err)
	}
	var out []string
	for _, p := range st.Peers {
		out = append(out, p.Subnet+"="+p.Endpoint)
	}
	slices.Sort(out)
	return out
}

// countLines counts the lines holding every one of parts.
func countLines(lines []string, parts ...string) int {
	n := 0
	for _, l := range lines {
		all := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}
