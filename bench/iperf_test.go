//go:build !unit

package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestParseIperfTCP(t *testing.T) {
	// Recorded from iperf 3.12: iperf3 -c ... -J -t 2 -P 2.
	res, err := parseIperf(readTestdata(t, "iperf3-tcp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !near(res.Bytes, 2858811392) || !near(res.Seconds, 2.002819) || !near(res.BitsPerSecond, 11419150275.686419) {
		t.Errorf("receiver figures = %+v", res)
	}
	if res.Retransmits != 0 || res.ReceivedPackets != 0 {
		t.Errorf("TCP run: retransmits %d, packets %v", res.Retransmits, res.ReceivedPackets)
	}
}

func TestParseIperfUDP(t *testing.T) {
	// Recorded from iperf 3.12: iperf3 -c ... -J -t 2 -u -b 0 -l 64.
	res, err := parseIperf(readTestdata(t, "iperf3-udp.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Receiver: 605725 packets counted, 366253 lost, 15326208 bytes = 239472 x 64 B.
	if res.ReceivedPackets != 239472 || res.ReceivedPackets*64 != res.Bytes {
		t.Errorf("received packets = %v (bytes %v), want 239472", res.ReceivedPackets, res.Bytes)
	}
	if !near(res.LostPercent, 60.34418558671368) {
		t.Errorf("loss = %v", res.LostPercent)
	}
	if pps := res.PacketsPerSecond(); !near(pps, 239472/2.010684) {
		t.Errorf("pps = %v", pps)
	}
}

func TestParseIperfOldUDPSumOnly(t *testing.T) {
	doc := `{"start":{"test_start":{"protocol":"UDP"}},"end":{"sum":{"seconds":5,"bytes":6400,"bits_per_second":10240,
		"packets":150,"lost_packets":50,"lost_percent":33.3}}}`
	res, err := parseIperf([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if res.ReceivedPackets != 100 || res.PacketsPerSecond() != 20 || res.LostPercent != 33.3 {
		t.Errorf("old-format UDP = %+v", res)
	}
}

func TestParseIperfErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"error field":  `{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`,
		"not json":     `iperf3: error - unable to connect`,
		"no sums":      `{"start":{},"end":{}}`,
		"zero seconds": `{"end":{"sum_received":{"seconds":0,"bytes":0}}}`,
	} {
		if _, err := parseIperf([]byte(doc)); err == nil {
			t.Errorf("%s: no error", name)
		} else if name == "error field" && !strings.Contains(err.Error(), "Connection refused") {
			t.Errorf("%s: error %q lacks iperf3's message", name, err)
		}
	}
}
