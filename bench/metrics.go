package main

import (
	"slices"
	"strings"
)

// metric is one figure the harness reports per path.
type metric struct {
	Key          string `json:"key"`
	Name         string `json:"name"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higherIsBetter"`
	// WeftOnly: measured on the weft path only (weftd's own CPU use).
	WeftOnly bool `json:"weftOnly,omitempty"`
}

// Metric keys.
const (
	mTCP1      = "tcp_1_gbps"
	mTCP4      = "tcp_4_gbps"
	mTCP6      = "tcp6_1_gbps" // one stream between the path's IPv6 endpoints
	mUDP64     = "udp_64_kpps"
	mUDP64Loss = "udp_64_loss_pct"
	mUDP1400   = "udp_1400_kpps"
	mUDP14Loss = "udp_1400_loss_pct"
	mLatP50    = "latency_p50_us"
	mLatP99    = "latency_p99_us"
	mCPUPerGB  = "cpu_s_per_gb"
	mCPUPaced  = "cpu_s_per_gb_paced"
	// The tcp-paced run's rate offered (pacedRateOf) and received: the
	// cost above is per byte received at that rate.
	mPacedOffered  = "tcp_paced_offered_gbps"
	mPacedReceived = "tcp_paced_received_gbps"
	mFixedLoss     = "udp_fixed_loss_pct"
	mFixedRate     = "udp_fixed_kpps"
	mLoadP50       = "latency_load_p50_us"
	mLoadP99       = "latency_load_p99_us"
	// The ping under a TCP stream over the ping on the idle path, p50 and
	// p99, from the same repetition (issue 22: weft's loaded p50 at most
	// 2x and p99 at most 3x its idle ones).
	mLoadRatioP50 = "latency_load_idle_ratio_p50"
	mLoadRatioP99 = "latency_load_idle_ratio_p99"
	// weftd's CPU use (both daemons together, % of one core) while idle and
	// during each workload.
	mWeftIdle  = "weftd_cpu_idle_pct"
	mWeftTCP1  = "weftd_cpu_tcp_1_pct"
	mWeftTCP4  = "weftd_cpu_tcp_4_pct"
	mWeftUDP64 = "weftd_cpu_udp_64_pct"
	mWeftUDP14 = "weftd_cpu_udp_1400_pct"
)

// allMetrics is the order of the table rows and the chart panels.
var allMetrics = []metric{
	{mTCP1, "TCP, 1 stream", "Gbit/s", true, false},
	{mTCP4, "TCP, 4 streams", "Gbit/s", true, false},
	{mTCP6, "TCP over IPv6, 1 stream", "Gbit/s", true, false},
	{mUDP64, "UDP 64 B, received", "kpkt/s", true, false},
	{mUDP64Loss, "UDP 64 B, loss", "%", false, false},
	{mUDP1400, "UDP 1400 B, received", "kpkt/s", true, false},
	{mUDP14Loss, "UDP 1400 B, loss", "%", false, false},
	{mLatP50, "ICMP RTT p50", "µs", false, false},
	{mLatP99, "ICMP RTT p99", "µs", false, false},
	{mCPUPerGB, "CPU per GB (TCP)", "CPU s/GB", false, false},
	{mCPUPaced, "CPU per GB, TCP paced (at the rate below), above idle", "CPU s/GB", false, false},
	{mPacedOffered, "TCP paced: rate offered", "Gbit/s", true, false},
	{mPacedReceived, "TCP paced: rate received", "Gbit/s", true, false},
	{mFixedRate, "UDP 1400 B fixed rate offered (VXLAN's <= 1 % loss rate)", "kpkt/s", true, false},
	{mFixedLoss, "UDP 1400 B at the fixed rate, loss", "%", false, false},
	{mLoadP50, "ICMP RTT p50 under a TCP stream", "µs", false, false},
	{mLoadP99, "ICMP RTT p99 under a TCP stream", "µs", false, false},
	{mLoadRatioP50, "ICMP RTT p50 under a TCP stream / idle p50", "×", false, false},
	{mLoadRatioP99, "ICMP RTT p99 under a TCP stream / idle p99", "×", false, false},
	{mWeftIdle, "weftd CPU, no traffic (max of the two)", "% of a core", false, true},
	{mWeftTCP1, "weftd CPU, TCP 1 stream (both)", "% of a core", false, true},
	{mWeftTCP4, "weftd CPU, TCP 4 streams (both)", "% of a core", false, true},
	{mWeftUDP64, "weftd CPU, UDP 64 B (both)", "% of a core", false, true},
	{mWeftUDP14, "weftd CPU, UDP 1400 B (both)", "% of a core", false, true},
}

// workloadOf names the workload that measures metric key.
func workloadOf(key string) string {
	switch key {
	case mTCP1, mWeftTCP1:
		return "tcp-1"
	case mTCP4, mWeftTCP4:
		return "tcp-4"
	case mTCP6:
		return "tcp6-1"
	case mUDP64, mUDP64Loss, mWeftUDP64:
		return "udp-64"
	case mUDP1400, mUDP14Loss, mWeftUDP14:
		return "udp-1400"
	case mLatP50, mLatP99:
		return "latency"
	case mCPUPerGB:
		return "tcp-1" // and tcp-4
	case mCPUPaced, mPacedOffered, mPacedReceived:
		return "tcp-paced"
	case mFixedLoss, mFixedRate:
		return "udp-fixed"
	case mLoadP50, mLoadP99, mLoadRatioP50, mLoadRatioP99:
		return "latency-load" // the ratios need "latency" too (needsIdleLatency)
	case mWeftIdle:
		return "idle"
	}
	return ""
}

// reasonKey is the metric whose "not measured by design" reason covers
// key too: the paced rates go with the paced cost.
func reasonKey(key string) string {
	if key == mPacedOffered || key == mPacedReceived {
		return mCPUPaced
	}
	return key
}

// needsIdleLatency reports whether metric key is derived from the idle
// latency workload as well as from its own.
func needsIdleLatency(key string) bool { return key == mLoadRatioP50 || key == mLoadRatioP99 }

// loadRatios are one repetition's idle and loaded ping percentiles of a
// path, to derive the loaded/idle ratios from.
type loadRatios struct {
	idleP50, idleP99, loadP50, loadP99 float64
}

// add records the ratios into res when the repetition measured both.
func (l loadRatios) add(res *results, path string) {
	if l.idleP50 > 0 && l.idleP99 > 0 && l.loadP50 > 0 && l.loadP99 > 0 {
		res.add(path, mLoadRatioP50, l.loadP50/l.idleP50)
		res.add(path, mLoadRatioP99, l.loadP99/l.idleP99)
	}
}

// Path names of the built-in paths.
const (
	pathRaw        = "raw"
	pathVXLAN      = "vxlan"
	pathWeft       = "weft"
	pathWeftDirect = "weft-direct"
)

// pathLabel is how a path is shown in the table and chart.
func pathLabel(name string) string {
	switch name {
	case pathRaw:
		return "raw veth"
	case pathVXLAN:
		return "kernel VXLAN"
	case pathWeft:
		return "weft"
	case pathWeftDirect:
		return "weft direct"
	case pathWeftWireGuard:
		return "weft wireguard"
	case pathWireGuardGo:
		return "wireguard-go"
	}
	return name
}

// results holds every sample: samples[path][metric key].
type results struct {
	Paths   []string
	samples map[string]map[string][]float64
	// NotMeasured says why a path has no samples of a metric by design
	// ("path/metric" -> reason), e.g. a path slower than the paced rate.
	NotMeasured map[string]string `json:",omitempty"`
}

// notMeasured records that path has no samples of key, and why; a
// different reason for the same cell (another repetition's) is added to
// the first, the same one is not repeated.
func (r *results) notMeasured(path, key, why string) {
	if r.NotMeasured == nil {
		r.NotMeasured = map[string]string{}
	}
	k := path + "/" + key
	switch old := r.NotMeasured[k]; {
	case old == "":
		r.NotMeasured[k] = why
	case !slices.Contains(strings.Split(old, "; "), why):
		r.NotMeasured[k] = old + "; " + why
	}
}

func newResults(paths []string) *results {
	r := &results{Paths: paths, samples: map[string]map[string][]float64{}}
	for _, p := range paths {
		r.samples[p] = map[string][]float64{}
	}
	return r
}

func (r *results) add(path, key string, v float64) {
	r.samples[path][key] = append(r.samples[path][key], v)
}

func (r *results) summary(path, key string) summary {
	return summarize(r.samples[path][key])
}
