//go:build !unit

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A second weftd for the same node that the lock does not stop: its own
// --lock-file (or another /run, as in a container with the host's
// network), its own health port. It must give up before it touches
// anything the first one holds: the direct routes, the source check's
// table, the TUN, the sockets. Watched with `ip monitor` and `nft monitor`
// while it runs (the first weftd puts routes back within 5 s, so a look
// afterwards would miss it), with DirectRouting and --queues 4. Before,
// it took the lease, replaced the guard's tables (their counters back to
// 0), deleted the first one's direct route as "left by an earlier run" and
// its source check's table, then failed on the TUN (exit 78).
func TestSecondWeftdWithOwnLockLeavesFirstAlone(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{Queues: 4,
		NetworkConfig: `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"udp","Port":8285,"DirectRouting":true}}`})
	requireQueues(t, c, 4)
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 2*time.Minute)
	waitModes(t, b, map[string]string{nodeSubnet(t, a).String(): "direct " + a.Host.IP.String()})
	routes := func() string { return runIn(t, ctx, b.Host.NS, "ip", "route", "show", "proto", "119") }
	direct := func() string { return runIn(t, ctx, b.Host.NS, "nft", "list", "table", "ip", "weft-direct") }
	// The first weftd binds node 1's subnet to its MAC address once it
	// sees the neighbour (its 5 s pass): wait for it, so that the monitors
	// below see no change of the first weftd's own.
	if err := testbed.WaitFor(ctxFor(t, 20*time.Second), 200*time.Millisecond, func() error {
		if d := direct(); !strings.Contains(d, nodeSubnet(t, a).String()) {
			return fmt.Errorf("table ip weft-direct has no binding for node 1's subnet yet:\n%s", d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	routesBefore, directBefore, linkBefore := routes(), direct(), linkLine(t, b, "weft0")
	if !strings.Contains(routesBefore, nodeSubnet(t, a).String()) {
		t.Fatalf("control: no direct route to node 1's subnet on node 2:\n%s", routesBefore)
	}

	for _, extra := range [][]string{
		{"--lock-file", filepath.Join(t.TempDir(), "second.lock"), "--healthz-port", "0"},
		// Its own TUN name too: only the UDP port tells it apart.
		{"--lock-file", filepath.Join(t.TempDir(), "third.lock"), "--healthz-port", "0", "--tun-name", "weft1"},
	} {
		secondWeftd(t, c, b, extra, routes, direct, routesBefore, directBefore, linkBefore)
	}
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
}

// secondWeftd runs a second weftd on n with extra flags and fails the test
// when it changed the first one's routes, nftables tables or TUN.
func secondWeftd(t *testing.T, c *cluster.Cluster, n *cluster.Node, extra []string, routes, direct func() string, routesBefore, directBefore, linkBefore string) {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	b := n
	monCtx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	var ipMon, nftMon strings.Builder
	ipm := b.Host.NS.Command(monCtx, "ip", "-o", "monitor", "route", "link")
	ipm.Stdout = &ipMon
	nftm := b.Host.NS.Command(monCtx, "nft", "monitor")
	nftm.Stdout = &nftMon
	for _, m := range []interface{ Start() error }{ipm, nftm} {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the monitors listen

	log, err := startWeftdWith(t, c, b, "second", extra...)
	time.Sleep(300 * time.Millisecond) // the monitors print what came
	stopMon()
	_ = ipm.Wait()
	_ = nftm.Wait()
	t.Logf("second weftd %v: %v\n%s", extra, err, log)
	if err == nil {
		t.Errorf("second weftd exited 0")
	}
	if !strings.Contains(log, "another weftd") {
		t.Errorf("second weftd's log does not name the cause:\n%s", log)
	}
	if s := ipMon.String(); strings.Contains(s, "Deleted") {
		t.Errorf("the second weftd %v deleted routes or links of the first:\n%s", extra, s)
	}
	if s := nftMon.String(); strings.Contains(s, "delete") || strings.Contains(s, "add table") {
		t.Errorf("the second weftd %v changed the first's nftables tables:\n%s", extra, s)
	}
	if got := routes(); got != routesBefore {
		t.Errorf("direct routes changed:\nbefore %s\nafter  %s", routesBefore, got)
	}
	if got := direct(); got != directBefore {
		t.Errorf("table ip weft-direct changed:\nbefore %s\nafter  %s", directBefore, got)
	}
	if got := linkLine(t, b, "weft0"); got == "" || strings.Fields(got)[0] != strings.Fields(linkBefore)[0] {
		t.Errorf("weft0 changed:\nbefore %s\nafter  %s", linkBefore, got)
	}
}

// The wireguard backend: a second weftd with its own lock file, TUN name
// and state directory (so its own key) must leave the first one's lease
// alone: written with the second one's public key, the peers would move
// to a key nobody on the node serves until the first weftd put its own
// back.
func TestSecondWireGuardWeftdKeepsTheLease(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: wireGuardConfig})
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 2*time.Minute)
	cli := etcdClientIn(t, a.Host.NS, c.EtcdEndpoint())
	key := "/weft/network/subnets/" + subnetKeyName(nodeSubnet(t, b))
	get := func() (string, int64) {
		resp, err := cli.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v %v", key, resp, err)
		}
		return string(resp.Kvs[0].Value), resp.Kvs[0].ModRevision
	}
	before, rev := get()
	dir := t.TempDir()
	log, err := startWeftdWith(t, c, b, "second", "--lock-file", filepath.Join(dir, "second.lock"), "--healthz-port", "0",
		"--tun-name", "weft1", "--state-dir", filepath.Join(dir, "state"), "--wireguard-uapi-name", "second")
	t.Logf("second weftd: %v\n%s", err, log)
	if err == nil {
		t.Errorf("second weftd exited 0")
	}
	if !strings.Contains(log, "another weftd") {
		t.Errorf("second weftd's log does not name the cause:\n%s", log)
	}
	if after, rev2 := get(); after != before || rev2 != rev {
		t.Errorf("the second weftd rewrote the first one's lease (revision %d -> %d):\nbefore %s\nafter  %s", rev, rev2, before, after)
	}
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
}

// The vxlan backend has no TUN and its port is held by the kernel's
// device between runs, so neither check above applies: a second weftd
// with its own lock file must still leave the first one's tables alone
// (the guard, network policy) and its device, routes and neighbours.
func TestSecondVXLANWeftdLeavesFirstAlone(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{NetworkConfig: vxlanConfig})
	a, b := c.Nodes[0], c.Nodes[1]
	ctx := ctxFor(t, 2*time.Minute)
	monCtx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	var ipMon, nftMon strings.Builder
	ipm := b.Host.NS.Command(monCtx, "ip", "-o", "monitor", "route", "link", "neigh")
	ipm.Stdout = &ipMon
	nftm := b.Host.NS.Command(monCtx, "nft", "monitor")
	nftm.Stdout = &nftMon
	for _, m := range []interface{ Start() error }{ipm, nftm} {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // the monitors listen
	log, err := startWeftdWith(t, c, b, "second", "--lock-file", filepath.Join(t.TempDir(), "second.lock"), "--healthz-port", "0")
	time.Sleep(300 * time.Millisecond)
	stopMon()
	_ = ipm.Wait()
	_ = nftm.Wait()
	t.Logf("second weftd: %v\n%s", err, log)
	if err == nil {
		t.Errorf("second weftd exited 0")
	}
	if !strings.Contains(log, "another weftd") {
		t.Errorf("second weftd's log does not name the cause:\n%s", log)
	}
	if s := ipMon.String(); strings.Contains(s, "Deleted") {
		t.Errorf("the second weftd deleted routes, links or neighbours of the first:\n%s", s)
	}
	if s := nftMon.String(); strings.TrimSpace(s) != "" {
		t.Errorf("the second weftd changed nftables tables of the first:\n%s", s)
	}
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
}
