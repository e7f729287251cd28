package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
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
	// Local and Remote are the addresses of the first connected stream,
	// MSS the control connection's maximum segment size (TCP_MAXSEG after
	// connecting, iperf3's tcp_mss_default; 0 when not reported): what
	// proves which family the run used, and whether the MSS fits the MTU.
	Local, Remote netip.Addr
	MSS           int
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
		Connected []struct {
			LocalHost  string `json:"local_host"`
			RemoteHost string `json:"remote_host"`
		} `json:"connected"`
		MSS       int `json:"tcp_mss_default"`
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
	if c := doc.Start.Connected; len(c) > 0 {
		// iperf3 prints IPv4-mapped addresses for an IPv4 run on a dual
		// socket; Unmap keeps the family what went on the wire.
		res.Local, _ = netip.ParseAddr(c[0].LocalHost)
		res.Remote, _ = netip.ParseAddr(c[0].RemoteHost)
		res.Local, res.Remote = res.Local.Unmap(), res.Remote.Unmap()
	}
	res.MSS = doc.Start.MSS
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
