package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/weftnet/weft/backend"

	"github.com/weftnet/weft/overlay"
	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// statsCollector turns the data path's counters and the daemon's state into
// Prometheus metrics at scrape time; nothing is copied on the packet path.
type statsCollector struct {
	state *daemonState

	packets   *prometheus.Desc
	bytes     *prometheus.Desc
	batches   *prometheus.Desc
	batchSize *prometheus.Desc
	drops     *prometheus.Desc
	peers     *prometheus.Desc
	malformed *prometheus.Desc
	// badValues: malformed endpoint, namespace and policy values read.
	badValues *prometheus.Desc
	// sourceDrops: packets from the underlay with a source in a direct
	// peer's subnet but another MAC address (direct routing only).
	sourceDrops *prometheus.Desc
	expiry      *prometheus.Desc
	ready       *prometheus.Desc
}

func newStatsCollector(state *daemonState) *statsCollector {
	dir := []string{"direction"}
	return &statsCollector{
		state:     state,
		packets:   prometheus.NewDesc("weft_packets_total", "Packets forwarded; direction tx is TUN to UDP, rx is UDP to TUN.", dir, nil),
		bytes:     prometheus.NewDesc("weft_bytes_total", "Bytes of inner IP packets forwarded.", dir, nil),
		batches:   prometheus.NewDesc("weft_batches_total", "Batches read (TUN reads for tx, UDP receives for rx).", dir, nil),
		batchSize: prometheus.NewDesc("weft_batch_size_packets", "Packets per batch.", dir, nil),
		drops:     prometheus.NewDesc("weft_drops_total", "Packets dropped, by reason.", []string{"direction", "reason"}, nil),
		peers:     prometheus.NewDesc("weft_peers", "Peers known from their leases, by how they are reached: udp (weft's data path), direct (a kernel route), unreachable (host-gw, not on this L2).", []string{"mode"}, nil),
		expiry:    prometheus.NewDesc("weft_lease_expiry_timestamp_seconds", "When this node's subnet lease expires (0: a reservation, no expiry).", nil, nil),
		ready:     prometheus.NewDesc("weft_lease_held", "1 when this node holds its subnet lease.", nil, nil),
		malformed: prometheus.NewDesc("weft_malformed_leases", "Keys under the etcd lease prefix that are no usable lease (ignored).", nil, nil),
		badValues: prometheus.NewDesc("weft_malformed_values_total", "Malformed endpoint, namespace and policy values read from etcd, by kind (a value read again counts again).", []string{"kind"}, nil),
		sourceDrops: prometheus.NewDesc("weft_direct_source_drops_total",
			"Packets from the underlay with a source in a direct peer's subnet but not that peer's MAC address, dropped by the kernel (nftables table ip weft-direct).", nil, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.batches, c.batchSize, c.drops, c.peers, c.sourceDrops, c.expiry, c.ready, c.malformed, c.badValues} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	if l := c.state.lease.Load(); l != nil {
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, 1)
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(c.state.leaseExpiry.Load()))
	} else {
		ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, 0)
	}
	if m := c.state.mgr.Load(); m != nil {
		ch <- prometheus.MustNewConstMetric(c.malformed, prometheus.GaugeValue, float64(m.MalformedLeases()))
		for i, n := range m.MalformedValues() {
			ch <- prometheus.MustNewConstMetric(c.badValues, prometheus.CounterValue, float64(n), subnet.ValueKinds[i])
		}
	}
	if paths := c.state.paths.Load(); paths != nil && paths.check != nil {
		ch <- prometheus.MustNewConstMetric(c.sourceDrops, prometheus.CounterValue, float64(paths.sourceDrops()))
	}
	if paths := c.state.paths.Load(); paths != nil {
		var count [len(routing.Modes)]int
		for _, p := range paths.view() {
			count[p.Mode]++
		}
		for _, m := range routing.Modes {
			ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(count[m]), m.String())
		}
	}
	if b := c.state.backend.Load(); b != nil {
		count := map[string]int{}
		for _, p := range b.Peers() {
			count[p.Mode]++
		}
		if m, ok := b.Backend.(backend.Modes); ok {
			for _, mode := range m.Modes() {
				ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(count[mode]), mode)
			}
		}
	}
	o := c.state.data.Load()
	if o == nil {
		return
	}
	st := o.Stats()
	for _, d := range []struct {
		name string
		s    overlay.DirStats
	}{{"tx", st.TX}, {"rx", st.RX}} {
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(d.s.Packets), d.name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(d.s.Bytes), d.name)
		ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(d.s.Batches), d.name)
		for r := range overlay.NumDropReasons {
			if n := d.s.Drops[r]; n > 0 {
				ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), d.name, overlay.DropReason(r).String())
			}
		}
		ch <- batchHistogram(c.batchSize, d.s, d.name)
	}
}

// batchHistogram converts the data path's per-bucket batch counts into a
// cumulative Prometheus histogram.
func batchHistogram(desc *prometheus.Desc, s overlay.DirStats, direction string) prometheus.Metric {
	bounds := overlay.BatchSizeBuckets()
	buckets := make(map[float64]uint64, len(bounds))
	var cumulative, sum uint64
	for i, upper := range bounds {
		if i < len(s.BatchSizes) {
			cumulative += s.BatchSizes[i]
		}
		buckets[float64(upper)] = cumulative
	}
	for i := len(bounds); i < len(s.BatchSizes); i++ {
		cumulative += s.BatchSizes[i]
	}
	sum = s.Packets
	for _, n := range s.Drops {
		sum += n
	}
	return prometheus.MustNewConstHistogram(desc, cumulative, float64(sum), buckets, direction)
}

// countersOf flattens the data path's stats for /status.
func countersOf(st overlay.Stats) map[string]any {
	out := map[string]any{}
	for _, d := range []struct {
		name string
		s    overlay.DirStats
	}{{"tx", st.TX}, {"rx", st.RX}} {
		out[d.name+"_packets"] = d.s.Packets
		out[d.name+"_bytes"] = d.s.Bytes
		out[d.name+"_batches"] = d.s.Batches
		drops := map[string]uint64{}
		for r := range overlay.NumDropReasons {
			if n := d.s.Drops[r]; n > 0 {
				drops[overlay.DropReason(r).String()] = n
			}
		}
		out[d.name+"_drops"] = drops
	}
	return out
}
