//go:build !unit

package main

import "testing"

func TestParsePingRTTs(t *testing.T) {
	out := `PING 192.0.2.2 (192.0.2.2) from 192.0.2.1 : 56(84) bytes of data.
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.308 ms
64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=0.038 ms
64 bytes from 192.0.2.2: icmp_seq=4 ttl=64 time=1.50 ms

--- 192.0.2.2 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 65ms
rtt min/avg/max/mdev = 0.038/0.094/0.308/0.106 ms
`
	rtts, err := parsePingRTTs(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{308, 38, 1500}
	if len(rtts) != len(want) {
		t.Fatalf("rtts = %v, want %v", rtts, want)
	}
	for i := range want {
		if !near(rtts[i], want[i]) {
			t.Errorf("rtt %d = %v µs, want %v", i, rtts[i], want[i])
		}
	}
	if _, err := parsePingRTTs("PING x\n--- statistics ---\n3 packets transmitted, 0 received\n"); err == nil {
		t.Error("no replies: no error")
	}
	if _, err := parsePingRTTs("64 bytes from x: time=abc ms\n"); err == nil {
		t.Error("bad time: no error")
	}
}
