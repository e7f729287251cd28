//go:build !unit

package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func sampleReport() *report {
	addr := netip.MustParseAddr
	return &report{
		Date:    time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC),
		Machine: machine{CPU: "Test CPU", Cores: 2, Kernel: "6.1.0", GoVersion: "go1.26", Iperf3: "iperf 3.12"},
		Reps:    3, Seconds: 5, PingCount: 300,
		Paths: []*path{
			{Name: pathRaw, A: addr("192.0.2.1"), B: addr("192.0.2.2"), Note: "veth <-> veth"},
			{Name: pathVXLAN, A: addr("10.99.0.1"), B: addr("10.99.0.2"), Note: "vxlan"},
			{Name: pathWeft, A: addr("10.244.1.0"), B: addr("10.244.2.0"), Note: "weftd"},
		},
		Results:  sampleResults(),
		Failures: []string{"repetition 2, udp-64 over weft: boom"},
		Micro:    "BenchmarkEncap-2  100  10 ns/op\nPASS",
		Duration: 4 * time.Minute,
	}
}

func TestReportJSON(t *testing.T) {
	data, err := sampleReport().json()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths   []struct{ Name, A, B, Note string }
		Metrics []struct {
			Key     string
			Results map[string]struct {
				N       int
				Median  float64
				Samples []float64
			}
			Ratios map[string]float64
		}
		Failures []string
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("results.json does not parse: %v\n%s", err, data)
	}
	if len(doc.Paths) != 3 || doc.Paths[2].A != "10.244.1.0" || doc.Paths[0].Note != "veth <-> veth" {
		t.Errorf("paths = %+v", doc.Paths)
	}
	if len(doc.Metrics) != len(allMetrics) || doc.Metrics[0].Key != mTCP1 {
		t.Fatalf("metrics = %+v", doc.Metrics)
	}
	tcp := doc.Metrics[0]
	if r := tcp.Results[pathWeft]; r.N != 3 || r.Median != 3 || len(r.Samples) != 3 {
		t.Errorf("weft TCP = %+v", r)
	}
	if tcp.Ratios["weft/vxlan"] != 0.5 || tcp.Ratios["weft/raw"] != 0.3 {
		t.Errorf("ratios = %v", tcp.Ratios)
	}
	// A metric without samples is an empty list with N 0, not NaN.
	for _, m := range doc.Metrics {
		if m.Key == mCPUPerGB {
			if r := m.Results[pathRaw]; r.N != 0 || r.Samples == nil || len(m.Ratios) != 0 {
				t.Errorf("empty metric = %+v ratios %v", r, m.Ratios)
			}
		}
	}
	if len(doc.Failures) != 1 {
		t.Errorf("failures = %v", doc.Failures)
	}
}

func TestReportMarkdown(t *testing.T) {
	md := sampleReport().markdown("benchmarks.png")
	for _, want := range []string{
		"| CPU | Test CPU |", "| cores | 2 |", "| kernel | 6.1.0 |", "| Go | go1.26 |",
		"2026-11-22", markdownTable(sampleResults()), "![weft vs kernel VXLAN vs raw veth](benchmarks.png)",
		"## Method", "-t 5", "ping -i 0.01 -c 300", "hosts' own stacks",
		"## Go microbenchmarks", "BenchmarkEncap-2", "repetition 2, udp-64 over weft: boom",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

func TestKeepSection(t *testing.T) {
	old := "# Benchmarks\nold table\n\n<!-- policy-bench:begin (x) -->\n## Network policy\nfigures\n<!-- policy-bench:end -->\n"
	got := keepSection(old, "# Benchmarks\nnew table\n")
	want := "# Benchmarks\nnew table\n\n<!-- policy-bench:begin (x) -->\n## Network policy\nfigures\n<!-- policy-bench:end -->\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := keepSection("no section", "fresh\n"); got != "fresh\n" {
		t.Fatalf("without a section: %q", got)
	}
}

// The loaded/idle ping ratios come from one repetition's two ping runs,
// and only when both measured.
func TestLoadRatios(t *testing.T) {
	res := newResults([]string{pathWeft})
	loadRatios{idleP50: 300, idleP99: 700, loadP50: 600, loadP99: 2800}.add(res, pathWeft)
	loadRatios{idleP50: 300, idleP99: 700}.add(res, pathWeft) // the loaded run failed
	if got := res.samples[pathWeft][mLoadRatioP50]; len(got) != 1 || got[0] != 2 {
		t.Errorf("p50 ratio samples %v, want [2]", got)
	}
	if got := res.samples[pathWeft][mLoadRatioP99]; len(got) != 1 || got[0] != 4 {
		t.Errorf("p99 ratio samples %v, want [4]", got)
	}
}
