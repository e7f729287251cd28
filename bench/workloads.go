package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weftnet/weft/testbed"
)

// iperfPort is where the iperf3 server on host 2 listens.
const iperfPort = 5201

// runner runs the workloads over every path and collects the samples.
type runner struct {
	bed       *testbed.Bed
	seconds   int
	pingCount int
	logDir    string
	res       *results
	failures  []string
	server    *testbed.Proc
	// tcp accumulates CPU seconds and bytes of the TCP runs of the current
	// repetition, per path.
	tcp map[string]*tcpTally
}

type tcpTally struct {
	cpuSeconds, bytes float64
}

// workload is one measurement run over one path.
type workload struct {
	name string
	run  func(ctx context.Context, r *runner, p *path) error
}

var workloads = []workload{
	{"tcp-1", func(ctx context.Context, r *runner, p *path) error { return r.runTCP(ctx, p, 1, mTCP1) }},
	{"tcp-4", func(ctx context.Context, r *runner, p *path) error { return r.runTCP(ctx, p, 4, mTCP4) }},
	{"udp-64", func(ctx context.Context, r *runner, p *path) error { return r.runUDP(ctx, p, 64, mUDP64, mUDP64Loss) }},
	{"udp-1400", func(ctx context.Context, r *runner, p *path) error {
		return r.runUDP(ctx, p, 1400, mUDP1400, mUDP14Loss)
	}},
	{"latency", func(ctx context.Context, r *runner, p *path) error { return r.runLatency(ctx, p) }},
}

// run does reps repetitions; within each, every workload runs over every
// path in turn (A B C A B C ...), so slow drifts hit all paths alike.
func (r *runner) run(ctx context.Context, paths []*path, reps int) error {
	if err := r.startServer(); err != nil {
		return err
	}
	for rep := 1; rep <= reps; rep++ {
		r.tcp = map[string]*tcpTally{}
		for _, w := range workloads {
			for _, p := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				start := time.Now()
				err := r.attempt(ctx, w, p)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					msg := fmt.Sprintf("repetition %d, %s over %s: %v", rep, w.name, p.Name, err)
					slog.Warn("workload failed", "rep", rep, "workload", w.name, "path", p.Name, "err", err)
					r.failures = append(r.failures, msg)
					continue
				}
				slog.Info("done", "rep", rep, "workload", w.name, "path", p.Name, "took", time.Since(start).Round(time.Millisecond))
			}
		}
		for name, t := range r.tcp {
			if t.bytes > 0 {
				r.res.add(name, mCPUPerGB, t.cpuSeconds/(t.bytes/1e9))
			}
		}
	}
	return nil
}

// attempt runs a workload, and once more after restarting the iperf3
// server if it fails (a failed test can leave the server stuck).
func (r *runner) attempt(ctx context.Context, w workload, p *path) error {
	err := w.run(ctx, r, p)
	if err == nil || ctx.Err() != nil {
		return err
	}
	slog.Warn("retrying", "workload", w.name, "path", p.Name, "err", err)
	if serr := r.restartServer(); serr != nil {
		return errors.Join(err, serr)
	}
	return w.run(ctx, r, p)
}

func (r *runner) startServer() error {
	h := r.bed.Hosts[1]
	proc, err := r.bed.Start(h, filepath.Join(r.logDir, "iperf3-server.log"), "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	r.server = proc
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return testbed.WaitFor(ctx, 50*time.Millisecond, func() error {
		if proc.Exited() {
			return fmt.Errorf("iperf3 server exited: %s", tailFile(proc.LogPath, 5))
		}
		_, err := h.NS.Run(ctx, "sh", "-c", fmt.Sprintf("ss -Hltn 'sport = :%d' | grep -q .", iperfPort))
		return err
	})
}

func (r *runner) restartServer() error {
	if r.server != nil {
		r.server.Kill()
	}
	return r.startServer()
}

// iperf runs an iperf3 client on host 1 against the server on host 2.
func (r *runner) iperf(ctx context.Context, p *path, extra ...string) (iperfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.seconds+30)*time.Second)
	defer cancel()
	args := append([]string{"-c", p.B.String(), "-B", p.A.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(r.seconds), "-J", "--connect-timeout", "3000"}, extra...)
	out, err := r.bed.Hosts[0].NS.Command(ctx, "iperf3", args...).Output()
	res, perr := parseIperf(out)
	if perr != nil {
		if err != nil {
			return res, fmt.Errorf("iperf3 %v: %w (%w)", args, perr, err)
		}
		return res, fmt.Errorf("iperf3 %v: %w", args, perr)
	}
	if err != nil {
		return res, fmt.Errorf("iperf3 %v: %w", args, err)
	}
	return res, nil
}

func (r *runner) runTCP(ctx context.Context, p *path, streams int, key string) error {
	before, err := readCPU()
	if err != nil {
		return err
	}
	res, err := r.iperf(ctx, p, "-P", strconv.Itoa(streams))
	if err != nil {
		return err
	}
	after, err := readCPU()
	if err != nil {
		return err
	}
	if res.BitsPerSecond <= 0 {
		return errors.New("iperf3 measured zero throughput")
	}
	r.res.add(p.Name, key, res.BitsPerSecond/1e9)
	t := r.tcp[p.Name]
	if t == nil {
		t = &tcpTally{}
		r.tcp[p.Name] = t
	}
	t.cpuSeconds += busySeconds(before, after)
	t.bytes += res.Bytes
	return nil
}

func (r *runner) runUDP(ctx context.Context, p *path, payload int, rateKey, lossKey string) error {
	res, err := r.iperf(ctx, p, "-u", "-b", "0", "-l", strconv.Itoa(payload))
	if err != nil {
		return err
	}
	if res.ReceivedPackets <= 0 {
		return errors.New("iperf3 UDP: nothing received")
	}
	r.res.add(p.Name, rateKey, res.PacketsPerSecond()/1e3)
	r.res.add(p.Name, lossKey, res.LostPercent)
	return nil
}

// runLatency pings every 10 ms; a few lost replies are tolerated (the
// percentiles are over the replies that came back), most are not.
func (r *runner) runLatency(ctx context.Context, p *path) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.pingCount)*20*time.Millisecond+20*time.Second)
	defer cancel()
	out, err := r.bed.Hosts[0].NS.Run(ctx, "ping", "-n", "-c", strconv.Itoa(r.pingCount), "-i", "0.01",
		"-W", "1", "-I", p.A.String(), p.B.String())
	rtts, perr := parsePingRTTs(out)
	if perr != nil {
		return errors.Join(perr, err)
	}
	if len(rtts) < r.pingCount/2 {
		return fmt.Errorf("ping: only %d of %d replies", len(rtts), r.pingCount)
	}
	r.res.add(p.Name, mLatP50, percentile(rtts, 50))
	r.res.add(p.Name, mLatP99, percentile(rtts, 99))
	return nil
}
