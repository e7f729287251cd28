package udp

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/overlay"
)

// The data path's metrics, read from its counters at scrape time; nothing
// is copied on the packet path.
var (
	dir         = []string{"direction"}
	packetsDesc = prometheus.NewDesc("weft_packets_total", "Packets forwarded; direction tx is TUN to UDP, rx is UDP to TUN.", dir, nil)
	bytesDesc   = prometheus.NewDesc("weft_bytes_total", "Bytes of inner IP packets forwarded.", dir, nil)
	batchesDesc = prometheus.NewDesc("weft_batches_total", "Batches read (TUN reads for tx, UDP receives for rx).", dir, nil)
	batchDesc   = prometheus.NewDesc("weft_batch_size_packets", "Packets per batch.", dir, nil)
	dropsDesc   = prometheus.NewDesc("weft_drops_total", "Packets dropped, by reason.", []string{"direction", "reason"}, nil)
	ceDesc      = prometheus.NewDesc("weft_ce_marked_total", "ECN-capable packets the TUN queue's AQM marked CE instead of dropping them (--aqm-target).", dir, nil)
	// sourceDropsDesc: packets from the underlay with a source in a direct
	// peer's subnet but another MAC address (direct routing only).
	sourceDropsDesc = prometheus.NewDesc("weft_direct_source_drops_total",
		"Packets from the underlay with a source in a direct peer's subnet but not that peer's MAC address, dropped by the kernel (nftables table ip weft-direct).", nil, nil)
)

// Describe implements prometheus.Collector.
func (b *Backend) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{packetsDesc, bytesDesc, batchesDesc, batchDesc, dropsDesc, ceDesc, sourceDropsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the data path's counters and,
// with direct routes, the source check's drops.
func (b *Backend) Collect(ch chan<- prometheus.Metric) {
	if b.paths != nil && b.check != nil {
		ch <- prometheus.MustNewConstMetric(sourceDropsDesc, prometheus.CounterValue, float64(b.paths.SourceDrops()))
	}
	if b.data == nil {
		return
	}
	st := b.data.Stats()
	for _, d := range []struct {
		name string
		s    overlay.DirStats
	}{{"tx", st.TX}, {"rx", st.RX}} {
		ch <- prometheus.MustNewConstMetric(packetsDesc, prometheus.CounterValue, float64(d.s.Packets), d.name)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(d.s.Bytes), d.name)
		ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.CounterValue, float64(d.s.Batches), d.name)
		for r := range overlay.NumDropReasons {
			if n := d.s.Drops[r]; n > 0 {
				ch <- prometheus.MustNewConstMetric(dropsDesc, prometheus.CounterValue, float64(n), d.name, overlay.DropReason(r).String())
			}
		}
		ch <- prometheus.MustNewConstMetric(ceDesc, prometheus.CounterValue, float64(d.s.CEMarked), d.name)
		ch <- batchHistogram(batchDesc, d.s, d.name)
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

// Counters flattens the data path's stats for /status.
func (b *Backend) Counters() map[string]any {
	out := map[string]any{}
	if b.data == nil {
		return out
	}
	st := b.data.Stats()
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
		if d.s.CEMarked > 0 {
			out[d.name+"_ce_marked"] = d.s.CEMarked
		}
	}
	return out
}
