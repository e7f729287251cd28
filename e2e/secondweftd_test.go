//go:build !unit

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	routesBefore, directBefore, linkBefore := routes(), direct(), linkLine(t, b, "weft0")
	if !strings.Contains(routesBefore, nodeSubnet(t, a).String()) {
		t.Fatalf("control: no direct route to node 1's subnet on node 2:\n%s", routesBefore)
	}

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

	log, err := startWeftdWith(t, c, b, "second", "--lock-file", filepath.Join(t.TempDir(), "second.lock"), "--healthz-port", "0")
	time.Sleep(300 * time.Millisecond) // the monitors print what came
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
		t.Errorf("the second weftd deleted routes or links of the first:\n%s", s)
	}
	if s := nftMon.String(); strings.Contains(s, "delete") || strings.Contains(s, "add table") {
		t.Errorf("the second weftd changed the first's nftables tables:\n%s", s)
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
	runIn(t, ctx, a.Host.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", tunAddr(t, b).String())
}
