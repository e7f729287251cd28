package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes an engine's state at scrape time; engine returns the
// engine or nil (enforcement off or not started).
type Collector struct {
	engine   func() *Engine
	drops    *prometheus.Desc
	applies  *prometheus.Desc
	duration *prometheus.Desc
	isolated *prometheus.Desc
	revision *prometheus.Desc
	rejected *prometheus.Desc
	restored *prometheus.Desc
}

// NewCollector returns the collector of weft_policy_* metrics.
func NewCollector(engine func() *Engine) *Collector {
	return &Collector{
		engine:   engine,
		drops:    prometheus.NewDesc("weft_policy_drops_total", "Packets dropped by network policy, by direction (ingress: a new connection to an isolated container here, egress: from one; ipv6-bridged: IPv6 other than ICMPv6 from or to a link-local address between two containers on the bridge, or from one to this host; spoofed-source: IPv4, ARP, IPv6 or a neighbour advertisement from a container's port with another container's or a made-up source).", []string{"direction"}, nil),
		applies:  prometheus.NewDesc("weft_policy_applies_total", "Rule set rebuilds, by result (ok, error: previous rules kept).", []string{"result"}, nil),
		duration: prometheus.NewDesc("weft_policy_last_apply_seconds", "Time the last rebuild took (compile and one nftables transaction).", nil, nil),
		isolated: prometheus.NewDesc("weft_policy_isolated_containers", "This node's containers isolated by policy, by direction.", []string{"direction"}, nil),
		revision: prometheus.NewDesc("weft_policy_revision", "etcd revision of the view the rules in force were built from.", nil, nil),
		rejected: prometheus.NewDesc("weft_policy_rejected_policies", "Stored policies left out of the rules in force because they do not parse or validate; each one's namespace is isolated (fails closed) until it is fixed or deleted.", nil, nil),
		restored: prometheus.NewDesc("weft_policy_tables_restored_total", "Times the policy tables were found changed by someone else (flushed chain or map, deleted or added rule, deleted table) and applied again.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.drops, c.applies, c.duration, c.isolated, c.revision, c.rejected, c.restored} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	p := c.engine()
	if p == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(p.applied.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(p.failed.Load()), "error")
	ch <- prometheus.MustNewConstMetric(c.duration, prometheus.GaugeValue, time.Duration(p.lastDurationNs.Load()).Seconds())
	ch <- prometheus.MustNewConstMetric(c.isolated, prometheus.GaugeValue, float64(p.isolatedIn.Load()), "ingress")
	ch <- prometheus.MustNewConstMetric(c.isolated, prometheus.GaugeValue, float64(p.isolatedOut.Load()), "egress")
	ch <- prometheus.MustNewConstMetric(c.revision, prometheus.GaugeValue, float64(p.lastRevision.Load()))
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.GaugeValue, float64(p.rejectedN.Load()))
	ch <- prometheus.MustNewConstMetric(c.restored, prometheus.CounterValue, float64(p.restored.Load()))
	if d, err := p.enf.Drops(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Ingress), "ingress")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Egress), "egress")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.IPv6), "ipv6-bridged")
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(d.Spoofed), "spoofed-source")
	}
}
