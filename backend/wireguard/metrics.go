package wireguard

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	eventsDesc = prometheus.NewDesc("weft_wireguard_events_total",
		"WireGuard handshake events and drops the embedded wireguard-go reported, by event.", []string{"event"}, nil)
	ignoredDesc = prometheus.NewDesc("weft_wireguard_ignored_peer_keys_total",
		"Leases left out for their PublicKey (malformed, this node's own, or another subnet's).", nil, nil)
	rxDesc = prometheus.NewDesc("weft_wireguard_peer_receive_bytes_total",
		"Bytes received from a WireGuard peer (by the peer's subnet).", []string{"subnet"}, nil)
	txDesc = prometheus.NewDesc("weft_wireguard_peer_transmit_bytes_total",
		"Bytes sent to a WireGuard peer (by the peer's subnet).", []string{"subnet"}, nil)
	ageDesc = prometheus.NewDesc("weft_wireguard_peer_last_handshake_age_seconds",
		"Seconds since the last handshake with a WireGuard peer (absent before the first).", []string{"subnet"}, nil)
)

// Describe is prometheus.Collector's.
func (b *Backend) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsDesc, ignoredDesc, rxDesc, txDesc, ageDesc} {
		ch <- d
	}
}

// Collect is prometheus.Collector's: the event counters and each peer's
// state, read from the device at each scrape.
func (b *Backend) Collect(ch chan<- prometheus.Metric) {
	for name, n := range b.evs.snapshot() {
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(ignoredDesc, prometheus.CounterValue, float64(b.bad.Load()))
	peers, err := b.Status()
	if err != nil {
		b.log.Warn("wireguard metrics", "err", err)
	}
	for _, p := range peers {
		ch <- prometheus.MustNewConstMetric(rxDesc, prometheus.CounterValue, float64(p.RxBytes), p.Subnet)
		ch <- prometheus.MustNewConstMetric(txDesc, prometheus.CounterValue, float64(p.TxBytes), p.Subnet)
		if p.HandshakeAgeSeconds >= 0 {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, p.HandshakeAgeSeconds, p.Subnet)
		}
	}
}
