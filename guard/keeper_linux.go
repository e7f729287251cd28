package guard

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/nfttable"
)

// Keeper keeps one node's guard in force: it installs it, compares the
// kernel's tables with what it installed and puts them back when anyone
// changed them (`nft flush ruleset`, a deleted or inserted rule), and
// reports its drops across reinstalls, never going back. It is a
// prometheus.Collector (weft_guard_drops_total,
// weft_guard_tables_restored_total). The zero value works on the default
// tables.
type Keeper struct {
	Options Options

	spec     atomic.Pointer[Spec]
	want     atomic.Pointer[string] // the tables as read back right after installing (Contents)
	restored atomic.Uint64          // tables found changed and installed again
	counts   counts
}

// Install puts the guard in force for spec and remembers it.
func (k *Keeper) Install(spec Spec) error {
	if err := Install(spec, k.Options); err != nil {
		return err
	}
	k.record()
	k.spec.Store(&spec)
	return nil
}

// Installed tells whether Install succeeded.
func (k *Keeper) Installed() bool { return k.spec.Load() != nil }

// record keeps the tables as just installed, for Check to compare with.
// An unreadable table records a text that no later read equals (Check then
// installs again).
func (k *Keeper) record() {
	s, err := Contents(k.Options)
	if err != nil {
		s = "unreadable: " + err.Error()
	}
	k.want.Store(&s)
}

// Check reinstalls the guard when its tables are not what Install left.
// It returns the first difference ("" when none, or before Install) and
// an error when the tables could not be read (no change) or put back.
func (k *Keeper) Check() (change string, err error) {
	spec, want := k.spec.Load(), k.want.Load()
	if spec == nil || want == nil {
		return "", nil
	}
	now, err := Contents(k.Options)
	if err != nil {
		return "", err
	}
	change = nfttable.Diff(*want, now)
	if change == "" {
		return "", nil
	}
	k.restored.Add(1)
	k.counts.reinstalled()
	if err := Install(*spec, k.Options); err != nil {
		return change, err
	}
	k.record()
	return change, nil
}

// Drops returns the packets dropped by reason since the first Install,
// across reinstalls.
func (k *Keeper) Drops() (map[string]uint64, error) {
	drops, err := Drops(k.Options)
	if err != nil {
		return nil, err
	}
	return k.counts.total(drops), nil
}

var (
	dropsDesc = prometheus.NewDesc("weft_guard_drops_total",
		"Packets from containers dropped by the container guard (nftables), by reason.", []string{"reason"}, nil)
	restoredDesc = prometheus.NewDesc("weft_guard_tables_restored_total",
		"Times the container guard's tables were found changed by someone else (deleted or added rule, flushed chain, deleted table) and installed again.", nil, nil)
)

// Describe implements prometheus.Collector.
func (k *Keeper) Describe(ch chan<- *prometheus.Desc) {
	ch <- dropsDesc
	ch <- restoredDesc
}

// Collect reads the guard's kernel counters at scrape time (nothing before
// Install; nothing of the drops when they cannot be read).
func (k *Keeper) Collect(ch chan<- prometheus.Metric) {
	if !k.Installed() {
		return
	}
	if drops, err := k.Drops(); err == nil {
		for _, r := range Reasons {
			ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(drops[r]), r)
		}
	}
	ch <- prometheus.MustNewConstMetric(restoredDesc, prometheus.CounterValue, float64(k.restored.Load()))
}

// counts carries the guard's kernel counters across reinstalls (a table
// put back after `nft flush ruleset` counts from 0 again), so that
// weft_guard_drops_total never goes back.
type counts struct {
	mu   sync.Mutex
	base map[string]uint64 // drops of earlier generations of the table
	seen map[string]uint64 // the current generation's, as last read
}

// total returns base + now (now raised to what was seen, as a vanished
// table reads 0) and remembers now.
func (g *counts) total(now map[string]uint64) map[string]uint64 {
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
func (g *counts) reinstalled() {
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
