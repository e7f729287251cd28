//go:build !unit

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// tcpConnect opens a TCP connection from ns to dst (and closes it).
func tcpConnect(ns *testbed.NS, dst netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := ns.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return err
	}
	return conn.Close()
}

// The embedded etcd has no authentication: a container that reaches it
// rewrites leases and policies (a container on host 2 deleted a
// NetworkPolicy through it). weftd's guard keeps every container, of its
// own node or of another (through the underlay or the overlay), from the
// embedded etcd's ports, while the hosts keep them: host 2's weftd works
// through it throughout.
func TestContainersCannotReachEmbeddedEtcd(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{}) // node 1 runs the embedded etcd on its underlay address
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ctr1 := addContainer(t, n1, "ec")
	ctr2 := addContainer(t, n2, "ec")
	etcdIP := n1.Host.IP
	client, peer := netip.AddrPortFrom(etcdIP, 2379), netip.AddrPortFrom(etcdIP, 2380)

	// Through the overlay: host 1 serves the etcd ports (and a control
	// port) on its weft0 address, where host 2's containers arrive
	// through weft0.
	tun1, err := n1.TunAddr()
	if err != nil {
		t.Fatal(err)
	}
	echo, err := testbed.ServeEcho(n1.Host.NS.Path(), tun1, []uint16{2379, 2390})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })

	check := func(when string) {
		t.Helper()
		for _, h := range []*testbed.Host{n1.Host, n2.Host} {
			for _, dst := range []netip.AddrPort{client, peer} {
				if err := tcpConnect(h.NS, dst, 10*time.Second); err != nil {
					t.Fatalf("%s: host %s -> embedded etcd %s: %v, want connected", when, h.IP, dst, err)
				}
			}
		}
		for _, ctr := range []*cluster.Container{ctr1, ctr2} {
			for _, dst := range []netip.AddrPort{client, peer} {
				if err := tcpConnect(ctr.NS, dst, 3*time.Second); err == nil {
					t.Fatalf("%s: container %s on node %d connected to the embedded etcd at %s", when, ctr.IP, ctr.Node.Index+1, dst)
				}
			}
		}
		if err := testbed.Probe(ctr2.NS.Path(), "tcp", netip.AddrPortFrom(tun1, 2390), 10*time.Second); err != nil {
			t.Fatalf("%s: control: container on node 2 -> host 1's weft0 %s:2390: %v, want echoed", when, tun1, err)
		}
		if err := testbed.Probe(ctr2.NS.Path(), "tcp", netip.AddrPortFrom(tun1, 2379), 3*time.Second); err != testbed.ErrNoEcho {
			t.Fatalf("%s: container on node 2 -> host 1's weft0 %s:2379 through the overlay: %v, want refused", when, tun1, err)
		}
		st, err := n2.Status(ctxFor(t, 10*time.Second))
		if err != nil || len(st.Peers) != 1 {
			t.Fatalf("%s: node 2 (whose weftd uses the embedded etcd over the underlay): status %+v, %v", when, st, err)
		}
	}
	before := guardDrops(metrics(t, n1), guard.ReasonEtcd)
	check("guarded")
	if after := guardDrops(metrics(t, n1), guard.ReasonEtcd); after <= before {
		t.Errorf("weft_guard_drops_total{reason=%q} %v after refused connections, want more than %v", guard.ReasonEtcd, after, before)
	}

	// After `nft flush ruleset` the guard comes back with the etcd rules.
	runIn(t, ctxFor(t, 10*time.Second), n1.Host.NS, "nft", "flush", "ruleset")
	if err := tcpConnect(ctr1.NS, client, 10*time.Second); err != nil {
		t.Fatalf("control: right after the flush the container on node 1 -> %s: %v, want connected (the flush removed the guard)", client, err)
	}
	err = testbed.WaitFor(ctxFor(t, 30*time.Second), 500*time.Millisecond, func() error {
		if err := tcpConnect(ctr1.NS, client, 2*time.Second); err == nil {
			return fmt.Errorf("container on node 1 still reaches %s", client)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("30 s after nft flush ruleset: %v\n%s", err, n1.Log(10))
	}
	check("after the flush")
	// Writes from node 2 still go through: a namespace label.
	out := runIn(t, ctxFor(t, 30*time.Second), n2.Host.NS, filepath.Join(binDir, "weftctl"), "--etcd-endpoints", c.EtcdEndpoint(), "namespace", "label", "guarded", "k=v")
	t.Logf("from host 2: %s", out)
}

// bridgeLinkLocal returns the IPv6 link-local address of node n's bridge,
// as ctr reaches it: with the index of its eth0 as zone (a zone name is
// looked up in a process-wide cache, whichever namespace filled it).
func bridgeLinkLocal(t *testing.T, n *cluster.Node, ctr *cluster.Container) netip.Addr {
	t.Helper()
	out := runIn(t, ctxFor(t, 10*time.Second), ctr.NS, "cat", "/sys/class/net/eth0/ifindex")
	zone := strings.TrimSpace(out)
	var ll netip.Addr
	err := testbed.WaitFor(ctxFor(t, 30*time.Second), 200*time.Millisecond, func() error {
		out, err := n.Host.NS.Run(ctxFor(t, 10*time.Second), "ip", "-6", "-o", "addr", "show", "dev", "weftbr0", "scope", "link")
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(out) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Addr().IsLinkLocalUnicast() {
				ll = p.Addr().WithZone(zone)
				return nil
			}
		}
		return fmt.Errorf("no link-local address on weftbr0: %s", out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ll
}

// Go listens on both families for a 0.0.0.0 address, so an embedded etcd
// given --embedded-etcd-listen http://0.0.0.0:2379 also answers on the
// host's IPv6 addresses, among them the bridge's link-local one, which
// every container on it can reach (with --network-policy=false nothing
// else drops IPv6 from the bridge). The guard drops it there too.
func TestContainersCannotReachEmbeddedEtcdOverIPv6(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{ExtraArgs: []string{"--network-policy=false", "--embedded-etcd-listen", "http://0.0.0.0:2379"}})
	n1 := c.Nodes[0]
	ctr := addContainer(t, n1, "e6")
	ll := bridgeLinkLocal(t, n1, ctr)
	// Control: a service on the host's IPv6 wildcard answers the container
	// at the bridge's link-local address (once duplicate address detection
	// is done), so the path to the host is open.
	echo, err := testbed.ServeEcho(n1.Host.NS.Path(), netip.IPv6Unspecified(), []uint16{2390})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	err = testbed.WaitFor(ctxFor(t, 30*time.Second), 500*time.Millisecond, func() error {
		return testbed.Probe(ctr.NS.Path(), "tcp", netip.AddrPortFrom(ll, 2390), 2*time.Second)
	})
	if err != nil {
		t.Fatalf("control: container -> host [%s]:2390: %v", ll, err)
	}
	check := func(when string) {
		t.Helper()
		before := guardDrops(metrics(t, n1), guard.ReasonEtcd)
		for _, port := range []uint16{2379, 2380} {
			dst := netip.AddrPortFrom(ll, port)
			if err := tcpConnect(ctr.NS, dst, 3*time.Second); err == nil {
				t.Fatalf("%s: container %s connected to the embedded etcd at %s", when, ctr.IP, dst)
			}
		}
		if after := guardDrops(metrics(t, n1), guard.ReasonEtcd); after <= before {
			t.Errorf("%s: weft_guard_drops_total{reason=%q} %v after refused connections, want more than %v", when, guard.ReasonEtcd, after, before)
		}
	}
	check("guarded")
	// The IPv6 table comes back with the guard: after the whole ruleset is
	// flushed, and when only it is deleted.
	for _, damage := range [][]string{{"flush", "ruleset"}, {"delete", "table", "ip6", guard.DefaultTable}} {
		runIn(t, ctxFor(t, 10*time.Second), n1.Host.NS, "nft", damage...)
		// Control: the damage opened the port (unless the 5 s check put the
		// table back in between, which then shows in the ruleset).
		if err := tcpConnect(ctr.NS, netip.AddrPortFrom(ll, 2379), 3*time.Second); err != nil {
			if _, lerr := n1.Host.NS.Run(ctxFor(t, 10*time.Second), "nft", "list", "table", "ip6", guard.DefaultTable); lerr != nil {
				t.Fatalf("control: right after nft %s the container -> [%s]:2379: %v, and no table ip6 %s", strings.Join(damage, " "), ll, err, guard.DefaultTable)
			}
		}
		err := testbed.WaitFor(ctxFor(t, 30*time.Second), 500*time.Millisecond, func() error {
			if err := tcpConnect(ctr.NS, netip.AddrPortFrom(ll, 2379), 2*time.Second); err == nil {
				return fmt.Errorf("container still reaches [%s]:2379", ll)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("30 s after nft %s: %v\n%s", strings.Join(damage, " "), err, n1.Log(10))
		}
		check("after nft " + strings.Join(damage, " "))
	}
	// The hosts keep it: host 2's weftd and weftctl use it over the underlay.
	out := runIn(t, ctxFor(t, 30*time.Second), c.Nodes[1].Host.NS, filepath.Join(binDir, "weftctl"), "--etcd-endpoints", c.EtcdEndpoint(), "leases")
	if strings.Count(out, "192.0.2.") < 2 {
		t.Errorf("weftctl leases from host 2: %s", out)
	}
}
