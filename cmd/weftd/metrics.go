package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/workload"
)

// statsCollector turns the daemon's state into Prometheus metrics at
// scrape time: the lease, the peers by mode, and whatever the backend
// exports itself (a backend that is a prometheus.Collector: the data
// path's packet counters for udp).
type statsCollector struct {
	state *daemonState

	peers     *prometheus.Desc
	malformed *prometheus.Desc
	// badValues: malformed endpoint, namespace and policy values read.
	badValues *prometheus.Desc
	expiry    *prometheus.Desc
	ready     *prometheus.Desc
}

func newStatsCollector(state *daemonState) *statsCollector {
	return &statsCollector{
		state:     state,
		peers:     prometheus.NewDesc("weft_peers", "Peers known from their leases, by how they are reached: udp (weft's data path), direct (a kernel route), unreachable (host-gw, not on this L2).", []string{"mode"}, nil),
		expiry:    prometheus.NewDesc("weft_lease_expiry_timestamp_seconds", "When this node's subnet lease expires (0: a reservation, no expiry).", nil, nil),
		ready:     prometheus.NewDesc("weft_lease_held", "1 when this node holds its subnet lease.", nil, nil),
		malformed: prometheus.NewDesc("weft_malformed_leases", "Keys under the etcd lease prefix that are no usable lease (ignored).", nil, nil),
		badValues: prometheus.NewDesc("weft_malformed_values_total", "Malformed endpoint, namespace and policy values read from etcd, by kind (a value read again counts again).", []string{"kind"}, nil),
	}
}

// Describe sends only weftd's own descriptions: the backend's metrics
// depend on the backend (an unchecked part of the collector).
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peers, c.expiry, c.ready, c.malformed, c.badValues} {
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
	}
	if s := c.state.store.Load(); s != nil {
		for i, n := range s.MalformedValues() {
			ch <- prometheus.MustNewConstMetric(c.badValues, prometheus.CounterValue, float64(n), workload.ValueKinds[i])
		}
	}
	p := c.state.backend.Load()
	if p == nil {
		return
	}
	be := *p
	count := map[string]int{}
	var modes []string
	if m, ok := be.(backend.Modes); ok {
		modes = m.Modes()
		for _, m := range modes {
			count[m] = 0
		}
	}
	for _, peer := range be.Peers() {
		if _, ok := count[peer.Mode]; !ok {
			modes = append(modes, peer.Mode)
		}
		count[peer.Mode]++
	}
	for _, m := range modes {
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(count[m]), m)
	}
	if bc, ok := be.(prometheus.Collector); ok {
		bc.Collect(ch)
	}
}
