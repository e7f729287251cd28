package main

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/guard"
)

// installGuard puts the container guard in force for this node's subnet:
// nothing from the CNI bridge (--policy-bridge) may pass as underlay
// traffic, and no container (of any node) may reach the embedded etcd. The table stays when weftd stops (the containers stay too).
func (d *weftd) installGuard(network, subnet netip.Prefix, port int) error {
	if d.opts.policyBridge == "" {
		d.log.Warn("no container bridge named (--policy-bridge \"\"): containers are not kept from forging underlay traffic")
		return nil
	}
	spec := guard.Spec{Bridge: d.opts.policyBridge, Subnet: subnet.Masked(), Network: network.Masked(), Port: uint16(port),
		EtcdPorts: d.etcdPorts}
	if err := guard.Install(spec, guard.Options{}); err != nil {
		return fmt.Errorf("container guard (nftables table ip %s; --policy-bridge \"\" runs without it): %w", guard.DefaultTable, err)
	}
	d.recordGuardTable()
	d.state.guardSpec.Store(&spec)
	d.state.guarded.Store(true)
	d.log.Info("container guard in force", "table", guard.DefaultTable, "bridge", spec.Bridge,
		"allowedSources", spec.Subnet, "weftPort", spec.Port, "embeddedEtcdPorts", spec.EtcdPorts)
	return nil
}

// recordGuardTable keeps the guard's tables as just installed, for the
// table check to compare with. An unreadable table records a text that
// no later read equals (the check then installs again).
func (d *weftd) recordGuardTable() {
	s, err := guard.Contents(guard.Options{})
	if err != nil {
		s = "unreadable: " + err.Error()
	}
	d.state.guardTable.Store(&s)
}

// guardDropsDesc is weft_guard_drops_total{reason}.
var guardDropsDesc = prometheus.NewDesc("weft_guard_drops_total",
	"Packets from containers dropped by the container guard (nftables), by reason.", []string{"reason"}, nil)

// collectGuardDrops reads the guard's kernel counters at scrape time.
func (d *weftd) collectGuardDrops(ch chan<- prometheus.Metric) {
	if !d.state.guarded.Load() {
		return
	}
	drops, err := guard.Drops(guard.Options{})
	if err != nil {
		d.log.Debug("read guard counters", "err", err)
		return
	}
	drops = d.state.guardDrops.total(drops)
	for _, r := range guard.Reasons {
		ch <- prometheus.MustNewConstMetric(guardDropsDesc, prometheus.CounterValue, float64(drops[r]), r)
	}
}

// guardRestoredDesc is weft_guard_tables_restored_total.
var guardRestoredDesc = prometheus.NewDesc("weft_guard_tables_restored_total",
	"Times the container guard's tables were found changed by someone else (deleted or added rule, flushed chain, deleted table) and installed again.", nil, nil)

// guardCollector exports weft_guard_drops_total and
// weft_guard_tables_restored_total.
type guardCollector struct{ d *weftd }

func (c guardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- guardDropsDesc
	ch <- guardRestoredDesc
}

func (c guardCollector) Collect(ch chan<- prometheus.Metric) {
	c.d.collectGuardDrops(ch)
	if c.d.state.guarded.Load() {
		ch <- prometheus.MustNewConstMetric(guardRestoredDesc, prometheus.CounterValue, float64(c.d.state.guardDrops.restored.Load()))
	}
}

// guardCounts carries the guard's kernel counters across reinstalls (a
// table put back after `nft flush ruleset` counts from 0 again), so that
// weft_guard_drops_total never goes back.
type guardCounts struct {
	restored atomic.Uint64 // tables found changed and installed again

	mu   sync.Mutex
	base map[string]uint64 // drops of earlier generations of the table
	seen map[string]uint64 // the current generation's, as last read
}

// total returns base + now (now raised to what was seen, as a vanished
// table reads 0) and remembers now.
func (g *guardCounts) total(now map[string]uint64) map[string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.base, g.seen = map[string]uint64{}, map[string]uint64{}
	}
	out := make(map[string]uint64, len(now))
	for r, n := range now {
		n = max(n, g.seen[r])
		g.seen[r] = n
		out[r] = g.base[r] + n
	}
	return out
}

// reinstalled starts a new generation: what was seen moves to base.
func (g *guardCounts) reinstalled() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for r, n := range g.seen {
		if g.base == nil {
			g.base = map[string]uint64{}
		}
		g.base[r] += n
	}
	g.seen = map[string]uint64{}
}
