package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftnet/weft/testbed"
)

// iperfPort is iperf3's default port, on which the demo's server listens.
const iperfPort = 5201

// iperfAttempts bounds the client runs: one normally; a retry covers a run
// that iperf3 itself reports as failed (with -J, iperf3 3.12 exits 0 even
// on "Connection refused" and says so only in the JSON's error field).
const iperfAttempts = 3

// iperfRun is what the demo reports of one iperf3 -J client run.
type iperfRun struct {
	BitsPerSecond float64
	Bytes         float64
	Retransmits   int
}

// parseIperf reads iperf3 -J output. A run iperf3 reports as failed (its
// "error" field), output that is not iperf3's JSON, and a run that moved
// nothing are errors.
func parseIperf(out []byte) (iperfRun, error) {
	var doc struct {
		End struct {
			SumReceived *struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Bytes         float64 `json:"bytes"`
			} `json:"sum_received"`
			SumSent *struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return iperfRun{}, fmt.Errorf("iperf3 printed no JSON result (%w): %.300s", err, out)
	}
	if doc.Error != "" {
		return iperfRun{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	if doc.End.SumReceived == nil {
		return iperfRun{}, errors.New("iperf3 JSON has no end.sum_received")
	}
	r := iperfRun{BitsPerSecond: doc.End.SumReceived.BitsPerSecond, Bytes: doc.End.SumReceived.Bytes}
	if doc.End.SumSent != nil {
		r.Retransmits = doc.End.SumSent.Retransmits
	}
	if r.BitsPerSecond <= 0 || r.Bytes <= 0 {
		return r, errors.New("iperf3 measured zero throughput")
	}
	return r, nil
}

// iperf runs an iperf3 TCP test from the first container to the last: the
// server is started and seen listening first, then the client runs; a
// run iperf3 reports as failed is retried (up to iperfAttempts).
func (d *demo) iperf(ctx context.Context) error {
	server := d.containers[len(d.containers)-1]
	client := d.containers[0]
	srv, err := d.bed.Start(&testbed.Host{NS: server.NS}, filepath.Join(d.workDir, "iperf3-server.log"),
		"iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	defer srv.Kill()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = testbed.WaitFor(wctx, 50*time.Millisecond, func() error {
		if srv.Exited() {
			log, _ := os.ReadFile(srv.LogPath)
			return fmt.Errorf("iperf3 server exited: %s", log)
		}
		_, err := server.NS.Run(wctx, "sh", "-c", fmt.Sprintf("ss -Hltn 'sport = :%d' | grep -q .", iperfPort))
		return err
	})
	cancel()
	if err != nil {
		return fmt.Errorf("iperf3 server not listening: %w", err)
	}
	var last error
	for attempt := 1; attempt <= iperfAttempts; attempt++ {
		if attempt > 1 {
			fmt.Fprintf(os.Stderr, "    iperf3 attempt %d of %d failed: %v; trying again\n", attempt-1, iperfAttempts, last)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(d.iperfSeconds+30)*time.Second)
		// Standard output only: the JSON (iperf3 writes warnings to stderr).
		out, runErr := client.NS.Command(cctx, "iperf3", "-c", server.IP.String(), "-p", strconv.Itoa(iperfPort),
			"-t", strconv.Itoa(d.iperfSeconds), "-J", "--connect-timeout", "3000").Output()
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := parseIperf(out)
		if err == nil && runErr != nil {
			err = fmt.Errorf("iperf3 client: %w", runErr)
		}
		if err != nil {
			last = err
			continue
		}
		fmt.Printf("    %s -> %s: %.2f Gbit/s received (%.0f MB, %d retransmits)\n", client.IP, server.IP,
			r.BitsPerSecond/1e9, r.Bytes/1e6, r.Retransmits)
		return nil
	}
	return fmt.Errorf("iperf3 failed %d times, last: %w", iperfAttempts, last)
}
