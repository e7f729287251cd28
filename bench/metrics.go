package main

// metric is one figure the harness reports per path.
type metric struct {
	Key          string `json:"key"`
	Name         string `json:"name"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higherIsBetter"`
}

// Metric keys.
const (
	mTCP1      = "tcp_1_gbps"
	mTCP4      = "tcp_4_gbps"
	mUDP64     = "udp_64_kpps"
	mUDP64Loss = "udp_64_loss_pct"
	mUDP1400   = "udp_1400_kpps"
	mUDP14Loss = "udp_1400_loss_pct"
	mLatP50    = "latency_p50_us"
	mLatP99    = "latency_p99_us"
	mCPUPerGB  = "cpu_s_per_gb"
)

// allMetrics is the order of the table rows and the chart panels.
var allMetrics = []metric{
	{mTCP1, "TCP, 1 stream", "Gbit/s", true},
	{mTCP4, "TCP, 4 streams", "Gbit/s", true},
	{mUDP64, "UDP 64 B, received", "kpkt/s", true},
	{mUDP64Loss, "UDP 64 B, loss", "%", false},
	{mUDP1400, "UDP 1400 B, received", "kpkt/s", true},
	{mUDP14Loss, "UDP 1400 B, loss", "%", false},
	{mLatP50, "ICMP RTT p50", "µs", false},
	{mLatP99, "ICMP RTT p99", "µs", false},
	{mCPUPerGB, "CPU per GB (TCP)", "CPU s/GB", false},
}

// Path names of the three built-in paths.
const (
	pathRaw   = "raw"
	pathVXLAN = "vxlan"
	pathWeft  = "weft"
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
	}
	return name
}

// results holds every sample: samples[path][metric key].
type results struct {
	Paths   []string
	samples map[string]map[string][]float64
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
