//go:build !unit

package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/testbed/cluster"
)

// weftd tells systemd READY=1 only once the subnet file is written, and its
// /metrics parse as Prometheus text with counters that move with traffic.
func TestReadyAndMetrics(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	ctx := ctxFor(t, time.Minute)
	for _, n := range c.Nodes {
		if err := n.ReadyCheck(); err != nil {
			t.Errorf("node %d: %v", n.Index+1, err)
		}
		code, body, err := n.Get(ctx, "/readyz")
		if err != nil || code != http.StatusOK {
			t.Errorf("node %d: /readyz: %d %s %v", n.Index+1, code, body, err)
		}
	}
	a, b := c.Nodes[0], c.Nodes[1]
	before := metrics(t, a)
	runIn(t, ctx, a.Host.NS, "ping", "-c", "5", "-i", "0.1", "-W", "2", tunAddr(t, b).String())
	after := metrics(t, a)
	for _, dir := range []string{"tx", "rx"} {
		for _, name := range []string{"weft_packets_total", "weft_bytes_total", "weft_batches_total"} {
			b0, a0 := counter(before, name, dir), counter(after, name, dir)
			if a0 < b0+5 && name != "weft_batches_total" || a0 <= b0 {
				t.Errorf("%s{direction=%q}: %v -> %v after 5 pings, want it to move", name, dir, b0, a0)
			}
		}
	}
	for _, name := range []string{"weft_peers", "weft_lease_expiry_timestamp_seconds", "weft_batch_size_packets", "weft_etcd_request_duration_seconds"} {
		if _, ok := after[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	if v := labelled(after, "weft_peers", "mode", "udp"); v != 1 {
		t.Errorf("weft_peers{mode=\"udp\"} = %v, want 1", v)
	}
	if v := labelled(after, "weft_peers", "mode", "direct"); v != 0 {
		t.Errorf("weft_peers{mode=\"direct\"} = %v, want 0", v)
	}
}

func metrics(t *testing.T, n *cluster.Node) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := n.Get(ctxFor(t, 10*time.Second), "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("node %d: /metrics: %d %v", n.Index+1, code, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("node %d: /metrics does not parse as Prometheus text: %v", n.Index+1, err)
	}
	return fams
}

func counter(fams map[string]*dto.MetricFamily, name, direction string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "direction" && l.GetValue() == direction {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func gauge(fams map[string]*dto.MetricFamily, name string) float64 {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) == 0 {
		return -1
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// labelled is the value of the gauge name{label=value} (-1 if absent).
func labelled(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// dropCount sums weft_drops_total for a direction and reason ("" = any).
func dropCount(fams map[string]*dto.MetricFamily, direction, reason string) float64 {
	var sum float64
	for _, m := range fams["weft_drops_total"].GetMetric() {
		var dir, why string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "direction":
				dir = l.GetValue()
			case "reason":
				why = l.GetValue()
			}
		}
		if dir == direction && (reason == "" || why == reason) {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func describeDrops(fams map[string]*dto.MetricFamily) string {
	var b bytes.Buffer
	for _, m := range fams["weft_drops_total"].GetMetric() {
		fmt.Fprintf(&b, "%v=%v ", m.GetLabel(), m.GetCounter().GetValue())
	}
	return b.String()
}

// A host whose subnet file names a subnet that another node holds now must
// not come up with a new subnet (its containers use the old one): weftd
// exits with an error saying so.
func TestRefusesToRenumber(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	a, b := c.Nodes[0], c.Nodes[1]
	if err := b.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	envA, err := a.Subnet()
	if err != nil {
		t.Fatal(err)
	}
	envB, err := b.Subnet()
	if err != nil {
		t.Fatal(err)
	}
	// Pretend b used a's subnet before: a holds it now.
	envB.Subnet = envA.Subnet
	if err := subnetfile.Write(b.SubnetFile, envB); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitExit(30 * time.Second); err == nil {
		t.Fatal("weftd exited 0 instead of refusing to renumber")
	}
	if log := b.Log(20); !strings.Contains(log, "refusing to renumber") {
		t.Fatalf("weftd did not say why it stopped:\n%s", log)
	}
	if after, err := b.Subnet(); err != nil || after.Subnet != envA.Subnet {
		t.Fatalf("subnet file changed to %v (%v): the host was renumbered", after.Subnet, err)
	}
}
