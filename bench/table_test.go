//go:build !unit

package main

import (
	"strings"
	"testing"
)

func sampleResults() *results {
	r := newResults([]string{pathRaw, pathVXLAN, pathWeft})
	for _, v := range []float64{10, 9, 11} {
		r.add(pathRaw, mTCP1, v)
	}
	for _, v := range []float64{6, 5.5, 6.5} {
		r.add(pathVXLAN, mTCP1, v)
	}
	for _, v := range []float64{3, 2.5, 3.2} {
		r.add(pathWeft, mTCP1, v)
	}
	r.add(pathRaw, mLatP50, 40)
	r.add(pathWeft, mLatP50, 120)
	return r
}

func TestMarkdownTable(t *testing.T) {
	table := markdownTable(sampleResults())
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2+len(allMetrics) {
		t.Fatalf("table has %d lines, want %d:\n%s", len(lines), 2+len(allMetrics), table)
	}
	if lines[0] != "| metric | raw veth | kernel VXLAN | weft | weft/VXLAN | weft/raw |" {
		t.Errorf("header = %q", lines[0])
	}
	if lines[1] != "| --- | ---: | ---: | ---: | ---: | ---: |" {
		t.Errorf("separator = %q", lines[1])
	}
	// weft 3 / VXLAN 6 = 0.50, weft 3 / raw 10 = 0.30.
	if want := "| TCP, 1 stream (Gbit/s) | 10.0 (9.00–11.0) | 6.00 (5.50–6.50) | 3.00 (2.50–3.20) | 0.50× | 0.30× |"; lines[2] != want {
		t.Errorf("TCP row\n got %q\nwant %q", lines[2], want)
	}
	var latency string
	for _, l := range lines {
		if strings.HasPrefix(l, "| ICMP RTT p50 (") {
			latency = l
		}
	}
	// No VXLAN sample: a dash and no weft/VXLAN ratio; single samples have no spread.
	if want := "| ICMP RTT p50 (µs) | 40.0 | – | 120 | – | 3.00× |"; latency != want {
		t.Errorf("latency row\n got %q\nwant %q", latency, want)
	}
	for _, l := range lines {
		if n := strings.Count(l, "|"); n != 7 {
			t.Errorf("row %q has %d separators, want 7", l, n)
		}
	}
}

func TestMarkdownTableExtraPath(t *testing.T) {
	r := newResults([]string{pathRaw, pathVXLAN, pathWeft, "wireguard"})
	r.add("wireguard", mTCP1, 2)
	table := markdownTable(r)
	if !strings.Contains(table, "| metric | raw veth | kernel VXLAN | weft | wireguard | weft/VXLAN | weft/raw |") {
		t.Errorf("extra path column missing:\n%s", table)
	}
	if !strings.Contains(table, "| TCP, 1 stream (Gbit/s) | – | – | – | 2.00 | – | – |") {
		t.Errorf("extra path row wrong:\n%s", table)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1234.5: "1234", 56.78: "56.8", 3.14159: "3.14", 0.01234: "0.012"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}
