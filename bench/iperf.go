package main

import (
	"encoding/json"
	"errors"
	"fmt"
)

// iperfResult is what the harness takes from one iperf3 -J run.
type iperfResult struct {
	// Bytes and Seconds are what the receiver got.
	Bytes   float64
	Seconds float64
	// BitsPerSecond is the receiver's rate.
	BitsPerSecond float64
	// Retransmits (TCP) as counted by the sender.
	Retransmits int
	// ReceivedPackets and LostPercent (UDP) as counted by the receiver.
	ReceivedPackets float64
	LostPercent     float64
}

// PacketsPerSecond is the UDP receive rate.
func (r iperfResult) PacketsPerSecond() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return r.ReceivedPackets / r.Seconds
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   int     `json:"retransmits"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
	LostPercent   float64 `json:"lost_percent"`
}

type iperfJSON struct {
	Start struct {
		TestStart struct {
			Protocol string `json:"protocol"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
		Sum         *iperfSum `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf reads the JSON iperf3 -J prints. For UDP the receiver's
// packet count and loss come from sum_received (iperf3 >= 3.10) or, in
// older versions, from sum.
func parseIperf(data []byte) (iperfResult, error) {
	var doc iperfJSON
	if err := json.Unmarshal(data, &doc); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 JSON: %w", err)
	}
	if doc.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	recv := doc.End.SumReceived
	if recv == nil {
		recv = doc.End.Sum
	}
	if recv == nil {
		return iperfResult{}, errors.New("iperf3 JSON: no end.sum_received or end.sum")
	}
	res := iperfResult{Bytes: recv.Bytes, Seconds: recv.Seconds, BitsPerSecond: recv.BitsPerSecond}
	if doc.End.SumSent != nil {
		res.Retransmits = doc.End.SumSent.Retransmits
	}
	if doc.Start.TestStart.Protocol == "UDP" {
		res.ReceivedPackets = recv.Packets - recv.LostPackets
		if res.ReceivedPackets < 0 {
			res.ReceivedPackets = 0
		}
		res.LostPercent = recv.LostPercent
	}
	if res.Seconds <= 0 {
		return res, errors.New("iperf3 JSON: zero-length test")
	}
	return res, nil
}
