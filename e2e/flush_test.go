//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// An operator's `nft flush ruleset` (what Debian's nftables.service does at
// every start and reload: /etc/nftables.conf begins with it) removes weft's
// tables with everything else. weftd must notice and put them back, so the
// container guard and isolation by policy return within seconds, without
// waiting for the next policy change.
func TestTablesComeBackAfterFlush(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	e := newMatrixEnv(t, c)
	n2 := c.Nodes[1]
	a := e.addPod("x", "a", n2)
	b := e.addPod("x", "b", n2)
	e.apply("deny", npYAML("x", "deny", "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Ingress]"))
	dst := netip.AddrPortFrom(b.ctr.IP, 80)
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 3*time.Second); err != testbed.ErrNoEcho {
		t.Fatalf("x/a -> x/b with the policy: %v, want refused", err)
	}
	before := counter(metrics(t, n2), "weft_policy_drops_total", "ingress")
	runIn(t, ctxFor(t, 10*time.Second), n2.Host.NS, "nft", "flush", "ruleset")
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 3*time.Second); err != nil {
		t.Fatalf("control: x/a -> x/b right after the flush: %v, want open (the flush removed the rules)", err)
	}
	start := time.Now()
	err := testbed.WaitFor(ctxFor(t, 30*time.Second), 500*time.Millisecond, func() error {
		for _, tbl := range [][]string{{"ip", guard.DefaultTable}, {"ip", policy.DefaultTable}, {"ip6", policy.DefaultTable}, {"bridge", policy.DefaultTable}} {
			if _, err := n2.Host.NS.Run(ctxFor(t, 10*time.Second), "nft", "list", "table", tbl[0], tbl[1]); err != nil {
				return fmt.Errorf("table %s %s: %w", tbl[0], tbl[1], err)
			}
		}
		if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 2*time.Second); err != testbed.ErrNoEcho {
			return fmt.Errorf("x/a -> x/b: %v, want refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("30 s after nft flush ruleset: %v\n%s", err, n2.Log(10))
	}
	t.Logf("weft's tables and the policy were back %v after the flush", time.Since(start).Round(100*time.Millisecond))
	// The counters carry on across the lost table.
	if after := counter(metrics(t, n2), "weft_policy_drops_total", "ingress"); after <= before {
		t.Errorf("weft_policy_drops_total{direction=ingress} %v after the flush and a refused probe, want more than %v (never backwards)", after, before)
	}
}

// With --ip-masq, `nft flush ruleset` also takes weftd's masquerading table:
// containers would leave the overlay with their own addresses until weftd
// restarts. The table check puts it back like the guard's.
func TestIPMasqTableComesBackAfterFlush(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{ExtraArgs: []string{"--ip-masq"}})
	ctr := addContainer(t, c.Nodes[0], "mq")
	host1, host2 := c.Nodes[0].Host, c.Nodes[1].Host
	fromHost1, fromCtr := countICMPFrom(t, host2.NS, host1.IP), countICMPFrom(t, host2.NS, ctr.IP)
	ping := func() {
		t.Helper()
		runIn(t, ctxFor(t, 30*time.Second), ctr.NS, "ping", "-c", "2", "-i", "0.2", "-W", "2", host2.IP.String())
	}
	ping()
	if a, b := fromHost1(), fromCtr(); a < 2 || b != 0 {
		t.Fatalf("before the flush: host 2 saw %d pings from %s and %d from the container's %s: want them masqueraded", a, host1.IP, b, ctr.IP)
	}
	runIn(t, ctxFor(t, 10*time.Second), host1.NS, "nft", "flush", "ruleset")
	// Control: without the table the container's own address shows.
	ping()
	if b := fromCtr(); b < 2 {
		t.Fatalf("control: right after the flush host 2 saw %d pings from the container's %s, want 2 (the flush removed masquerading)", b, ctr.IP)
	}
	start := time.Now()
	err := testbed.WaitFor(ctxFor(t, 30*time.Second), 500*time.Millisecond, func() error {
		out, err := host1.NS.Run(ctxFor(t, 10*time.Second), "nft", "list", "table", "ip", "weft-masq")
		if err != nil {
			return fmt.Errorf("table ip weft-masq: %w", err)
		}
		if n := strings.Count(out, "masquerade"); n != 2 {
			return fmt.Errorf("table ip weft-masq has %d masquerade rules, want 2:\n%s", n, out)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("30 s after nft flush ruleset: %v\n%s", err, c.Nodes[0].Log(10))
	}
	t.Logf("table ip weft-masq was back %v after the flush", time.Since(start).Round(100*time.Millisecond))
	// Conntrack remembers the unmasqueraded ping flow (same ICMP id) for
	// 30 s; ping afresh (a new id each run) and expect host 1's address.
	a0, b0 := fromHost1(), fromCtr()
	ping()
	if a, b := fromHost1()-a0, fromCtr()-b0; a < 2 || b != 0 {
		t.Fatalf("after the table came back: host 2 saw %d pings from %s and %d from the container's %s: want them masqueraded", a, host1.IP, b, ctr.IP)
	}
	if !strings.Contains(c.Nodes[0].Log(50), "masquerading table went missing") {
		t.Errorf("no WARN about the missing masquerading table in host 1's log:\n%s", c.Nodes[0].Log(20))
	}
}
