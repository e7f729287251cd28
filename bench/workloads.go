package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// iperfPort is where the iperf3 server on host 2 listens.
const iperfPort = 5201

// runner runs the workloads over every path and collects the samples.
type runner struct {
	bed       *testbed.Bed
	seconds   int
	pingCount int
	tcpCC     string // iperf3 -C for every TCP sender ("": the default)
	logDir    string
	res       *results
	failures  []string
	// warnings are measurements kept with a caveat (a paced run short of
	// its rate within the margin), for the report.
	warnings []string
	// rep is the repetition running (from 1), for the failures and warnings.
	rep     int
	servers map[*testbed.Bed]*testbed.Proc // iperf3 server per bed
	// tcp accumulates CPU seconds and bytes of the TCP runs of the current
	// repetition, per path.
	tcp map[string]*tcpTally
	// weft runs weftd on the weft path (nil without it): its CPU use is
	// measured per workload.
	weft *cluster.Cluster
	only map[string]bool // workloads to run, nil for all
	// fixedPPS is this repetition's fixed UDP rate (calibrateFixedRate).
	fixedPPS float64
	// pings holds this repetition's idle and loaded ping percentiles per
	// path (the loaded/idle ratios).
	pings map[string]*loadRatios
}

type tcpTally struct {
	cpuSeconds, bytes float64
}

// workload is one measurement run over one path.
type workload struct {
	name string
	run  func(ctx context.Context, r *runner, p *path) error
	// weftCPU is the metric of weftd's CPU use during the workload on the
	// weft path ("" for none).
	weftCPU string
}

var workloads = []workload{
	{"idle", func(ctx context.Context, r *runner, p *path) error { return r.runIdle(ctx, p) }, ""},
	{"tcp-1", func(ctx context.Context, r *runner, p *path) error { return r.runTCP(ctx, p, 1, mTCP1) }, mWeftTCP1},
	{"tcp6-1", func(ctx context.Context, r *runner, p *path) error { return r.runTCP6(ctx, p) }, ""},
	{"tcp-4", func(ctx context.Context, r *runner, p *path) error { return r.runTCP(ctx, p, 4, mTCP4) }, mWeftTCP4},
	{"tcp-paced", func(ctx context.Context, r *runner, p *path) error { return r.runTCPPaced(ctx, p) }, ""},
	{"udp-64", func(ctx context.Context, r *runner, p *path) error { return r.runUDP(ctx, p, 64, mUDP64, mUDP64Loss) }, mWeftUDP64},
	{"udp-1400", func(ctx context.Context, r *runner, p *path) error {
		return r.runUDP(ctx, p, 1400, mUDP1400, mUDP14Loss)
	}, mWeftUDP14},
	{"udp-rate", func(ctx context.Context, r *runner, p *path) error { return r.calibrateFixedRate(ctx, p) }, ""},
	{"udp-fixed", func(ctx context.Context, r *runner, p *path) error { return r.runFixedRate(ctx, p) }, ""},
	{"latency", func(ctx context.Context, r *runner, p *path) error { return r.runLatency(ctx, p) }, ""},
	{"latency-load", func(ctx context.Context, r *runner, p *path) error { return r.runLatencyUnderLoad(ctx, p) }, ""},
}

// workloadNames lists the workloads for -only.
func workloadNames() string {
	var names []string
	for _, w := range workloads {
		names = append(names, w.name)
	}
	return strings.Join(names, ",")
}

// run does reps repetitions; within each, every workload runs over every
// path in turn (A B C A B C ...), so slow drifts hit all paths alike.
func (r *runner) run(ctx context.Context, paths []*path, reps int) error {
	r.servers = map[*testbed.Bed]*testbed.Proc{}
	for _, p := range paths {
		if bed := r.bedOf(p); r.servers[bed] == nil {
			if err := r.startServer(bed); err != nil {
				return err
			}
		}
	}
	for rep := 1; rep <= reps; rep++ {
		r.rep = rep
		r.tcp = map[string]*tcpTally{}
		r.fixedPPS = 0
		r.pings = map[string]*loadRatios{}
		for _, w := range workloads {
			if r.only != nil && !r.only[w.name] {
				continue
			}
			for _, p := range paths {
				if err := ctx.Err(); err != nil {
					return err
				}
				start := time.Now()
				cpu := r.weftCPUStart(w, p)
				err := r.attempt(ctx, w, p)
				if err == nil {
					r.weftCPUEnd(cpu)
				}
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
		for _, p := range paths {
			if l := r.pings[p.Name]; l != nil {
				l.add(r.res, p.Name)
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
	if serr := r.restartServer(r.bedOf(p)); serr != nil {
		return errors.Join(err, serr)
	}
	return w.run(ctx, r, p)
}

// bedOf is the bed whose hosts carry path p.
func (r *runner) bedOf(p *path) *testbed.Bed {
	if p.bed != nil {
		return p.bed
	}
	return r.bed
}

func (r *runner) startServer(bed *testbed.Bed) error {
	h := bed.Hosts[1]
	logName := "iperf3-server.log"
	if bed != r.bed {
		logName = "iperf3-server-" + h.NS.Name + ".log"
	}
	proc, err := bed.Start(h, filepath.Join(r.logDir, logName), "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	r.servers[bed] = proc
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

func (r *runner) restartServer(bed *testbed.Bed) error {
	if s := r.servers[bed]; s != nil {
		s.Kill()
	}
	return r.startServer(bed)
}

// iperf runs an iperf3 client on host 1 against the server on host 2.
func (r *runner) iperf(ctx context.Context, p *path, extra ...string) (iperfResult, error) {
	return r.iperfBetween(ctx, p, p.A, p.B, extra...)
}

// iperfBetween runs iperf between addresses a (host 1) and b (host 2) of
// path p: A and B, or A6 and B6.
func (r *runner) iperfBetween(ctx context.Context, p *path, a, b netip.Addr, extra ...string) (iperfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.seconds+30)*time.Second)
	defer cancel()
	args := append([]string{"-c", b.String(), "-B", a.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(r.seconds), "-J", "--connect-timeout", "3000"}, extra...)
	if !slices.Contains(extra, "-u") {
		args = append(args, r.ccArgs()...)
	}
	out, err := r.bedOf(p).Hosts[0].NS.Command(ctx, "iperf3", args...).Output()
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

// runTCPPaced measures the CPU cost per byte of one TCP stream paced at
// the path's rate (pacedRateOf): the machine's busy time during the run
// minus its busy time in an equally long quiet window just before, per GB
// received. With the unlimited runs every path keeps both cores busy, so
// there CPU per GB is about cores*8/Gbit/s whatever the path does. The
// rates offered and received are recorded beside the cost; a shortfall
// within pacedShortfall's margin is a warning, not a failure.
func (r *runner) runTCPPaced(ctx context.Context, p *path) error {
	if tcp := r.res.samples[p.Name][mTCP1]; len(tcp) > 0 {
		if why := pacedTooSlow(p.Name, slices.Max(tcp)); why != "" {
			// The path cannot carry its pacing rate (flannel udp): its cost
			// at that rate does not exist, which is not a failure.
			// A later repetition may measure it (the fastest run so far
			// decides): the reason names the repetition.
			r.res.notMeasured(p.Name, mCPUPaced, fmt.Sprintf("repetition %d: %s", r.rep, why))
			slog.Info("not measured", "workload", "tcp-paced", "path", p.Name, "reason", "slower than the pacing rate")
			return nil
		}
	}
	rate := pacedRateOf(p.Name)
	quiet := time.Duration(r.seconds) * time.Second
	q0, err := readCPU()
	if err != nil {
		return err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(quiet):
	}
	q1, err := readCPU()
	if err != nil {
		return err
	}
	quietTook := time.Since(start)
	before, err := readCPU()
	if err != nil {
		return err
	}
	start = time.Now()
	res, err := r.iperf(ctx, p, "--fq-rate", strconv.FormatInt(int64(rate), 10))
	if err != nil {
		return err
	}
	after, err := readCPU()
	if err != nil {
		return err
	}
	ran := time.Since(start)
	warning, err := pacedShortfall(rate, res.BitsPerSecond)
	if err != nil {
		return err
	}
	cost, err := pacedCPUPerGB(busySeconds(before, after), ran, busySeconds(q0, q1), quietTook, res.Bytes)
	if err != nil {
		return err
	}
	r.res.add(p.Name, mCPUPaced, cost)
	r.res.add(p.Name, mPacedOffered, rate/1e9)
	r.res.add(p.Name, mPacedReceived, res.BitsPerSecond/1e9)
	if warning != "" {
		slog.Warn("paced TCP short of its rate", "path", p.Name, "warning", warning)
		r.warnings = append(r.warnings, fmt.Sprintf("repetition %d, tcp-paced over %s: %s", r.rep, p.Name, warning))
	}
	return nil
}

// pacedCPUPerGB is the CPU seconds per GB above the quiet rate: busy
// seconds over the run, minus the quiet window's busy rate times the run's
// length, per 10^9 bytes.
func pacedCPUPerGB(busy float64, ran time.Duration, quietBusy float64, quiet time.Duration, bytes float64) (float64, error) {
	if bytes <= 0 || ran <= 0 || quiet <= 0 {
		return 0, fmt.Errorf("paced TCP: nothing to divide (bytes %v, run %v, quiet %v)", bytes, ran, quiet)
	}
	net := busy - quietBusy*ran.Seconds()/quiet.Seconds()
	if net <= 0 {
		return 0, fmt.Errorf("paced TCP: the machine was busier before the run (%.2f CPU s in %v) than during it (%.2f in %v): other load, measure again",
			quietBusy, quiet.Round(time.Millisecond), busy, ran.Round(time.Millisecond))
	}
	return net / (bytes / 1e9), nil
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
	rtts, err := r.ping(ctx, p)
	if err != nil {
		return err
	}
	p50, p99 := percentile(rtts, 50), percentile(rtts, 99)
	r.res.add(p.Name, mLatP50, p50)
	r.res.add(p.Name, mLatP99, p99)
	l := r.pingsOf(p.Name)
	l.idleP50, l.idleP99 = p50, p99
	return nil
}

// ping sends pingCount pings 10 ms apart from A to B and returns the RTTs.
func (r *runner) ping(ctx context.Context, p *path) ([]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.pingCount)*20*time.Millisecond+20*time.Second)
	defer cancel()
	out, err := r.bedOf(p).Hosts[0].NS.Run(ctx, "ping", "-n", "-c", strconv.Itoa(r.pingCount), "-i", "0.01",
		"-W", "1", "-I", p.A.String(), p.B.String())
	rtts, perr := parsePingRTTs(out)
	if perr != nil {
		return nil, errors.Join(perr, err)
	}
	if len(rtts) < r.pingCount/2 {
		return nil, fmt.Errorf("ping: only %d of %d replies", len(rtts), r.pingCount)
	}
	return rtts, nil
}

// weftCPUMark is weftd's CPU time (both daemons) at the start of a workload.
type weftCPUMark struct {
	key   string
	ticks uint64
	at    time.Time
}

func (r *runner) weftCPUStart(w workload, p *path) *weftCPUMark {
	if w.weftCPU == "" || p.Name != pathWeft || r.weft == nil {
		return nil
	}
	t, err := r.weftTicks()
	if err != nil {
		slog.Warn("weftd CPU", "err", err)
		return nil
	}
	return &weftCPUMark{key: w.weftCPU, ticks: t, at: time.Now()}
}

func (r *runner) weftCPUEnd(m *weftCPUMark) {
	if m == nil {
		return
	}
	t, err := r.weftTicks()
	if err != nil {
		slog.Warn("weftd CPU", "err", err)
		return
	}
	r.res.add(pathWeft, m.key, cpuPercent(t-m.ticks, time.Since(m.at)))
}

// weftTicks sums the CPU ticks of every running weftd.
func (r *runner) weftTicks() (uint64, error) {
	var sum uint64
	for _, n := range r.weft.Nodes {
		t, err := processTicks(n.Pid())
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// runIdle measures weftd's CPU use with no traffic for 10 s (weft path
// only): the larger of the two daemons, in % of a core.
func (r *runner) runIdle(ctx context.Context, p *path) error {
	if p.Name != pathWeft || r.weft == nil {
		return nil
	}
	const window = 10 * time.Second
	var before []uint64
	for _, n := range r.weft.Nodes {
		t, err := processTicks(n.Pid())
		if err != nil {
			return err
		}
		before = append(before, t)
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	elapsed := time.Since(start)
	worst := 0.0
	for i, n := range r.weft.Nodes {
		t, err := processTicks(n.Pid())
		if err != nil {
			return err
		}
		worst = max(worst, cpuPercent(t-before[i], elapsed))
	}
	r.res.add(pathWeft, mWeftIdle, worst)
	return nil
}

// Fixed-rate UDP: the rate is the one kernel VXLAN carries with at most
// fixedRateMaxLoss % loss in the same repetition, found from its unlimited
// UDP 1400 B rate: start at fixedRateShare of it and step down by
// fixedRateStep until the loss is low enough (at most fixedRateTries runs).
const (
	fixedRateShare   = 0.9
	fixedRateStep    = 0.7
	fixedRateTries   = 4
	fixedRateMaxLoss = 1.0
)

// nextFixedRate is the rate to try after offering pps with loss (percent),
// and whether the search is over.
func nextFixedRate(pps, loss float64, try int) (float64, bool) {
	if loss <= fixedRateMaxLoss || try+1 >= fixedRateTries {
		return pps, true
	}
	return pps * fixedRateStep, false
}

// calibrateFixedRate (kernel VXLAN only) finds this repetition's fixed rate.
func (r *runner) calibrateFixedRate(ctx context.Context, p *path) error {
	if p.Name != pathVXLAN {
		return nil
	}
	vx := r.res.samples[pathVXLAN][mUDP1400]
	if len(vx) == 0 {
		return errors.New("no kernel VXLAN UDP 1400 B sample yet to derive the rate from")
	}
	pps := vx[len(vx)-1] * 1e3 * fixedRateShare
	for try := 0; ; try++ {
		res, err := r.iperf(ctx, p, "-u", "-b", strconv.FormatInt(int64(pps*1400*8), 10), "-l", "1400")
		if err != nil {
			return err
		}
		next, done := nextFixedRate(pps, res.LostPercent, try)
		slog.Info("fixed rate search", "offered_kpps", pps/1e3, "vxlan_loss_pct", res.LostPercent, "done", done)
		if done {
			r.fixedPPS = pps
			return nil
		}
		pps = next
	}
}

// runFixedRate offers UDP 1400 B at the calibrated rate and records the loss.
func (r *runner) runFixedRate(ctx context.Context, p *path) error {
	if r.fixedPPS <= 0 {
		return errors.New("no fixed rate calibrated on kernel VXLAN in this repetition")
	}
	pps := r.fixedPPS
	res, err := r.iperf(ctx, p, "-u", "-b", strconv.FormatInt(int64(pps*1400*8), 10), "-l", "1400")
	if err != nil {
		return err
	}
	if res.ReceivedPackets <= 0 {
		return errors.New("iperf3 UDP: nothing received")
	}
	r.res.add(p.Name, mFixedLoss, res.LostPercent)
	r.res.add(p.Name, mFixedRate, pps/1e3)
	slog.Info("fixed rate", "path", p.Name, "offered_kpps", pps/1e3, "loss_pct", res.LostPercent)
	return nil
}

// ccArgs are iperf3's arguments for -tcp-cc (none without it).
func (r *runner) ccArgs() []string {
	if r.tcpCC == "" {
		return nil
	}
	return []string{"-C", r.tcpCC}
}

// runLatencyUnderLoad pings while one TCP stream runs over the same path.
func (r *runner) runLatencyUnderLoad(ctx context.Context, p *path) error {
	pingTime := time.Duration(r.pingCount) * 10 * time.Millisecond
	seconds := int((pingTime + 3*time.Second) / time.Second)
	ictx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	cmd := r.bedOf(p).Hosts[0].NS.Command(ictx, "iperf3", "-c", p.B.String(), "-B", p.A.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(seconds), "--connect-timeout", "3000")
	cmd.Args = append(cmd.Args, r.ccArgs()...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("iperf3: %w", err)
	}
	// Let the stream ramp up before the first ping.
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	rtts, perr := r.ping(ctx, p)
	werr := cmd.Wait()
	if perr != nil {
		return perr
	}
	if werr != nil {
		return fmt.Errorf("iperf3 under the pings: %w", werr)
	}
	p50, p99 := percentile(rtts, 50), percentile(rtts, 99)
	r.res.add(p.Name, mLoadP50, p50)
	r.res.add(p.Name, mLoadP99, p99)
	l := r.pingsOf(p.Name)
	l.loadP50, l.loadP99 = p50, p99
	return nil
}

// pingsOf is this repetition's ping record of a path.
func (r *runner) pingsOf(path string) *loadRatios {
	if r.pings == nil {
		r.pings = map[string]*loadRatios{}
	}
	l := r.pings[path]
	if l == nil {
		l = &loadRatios{}
		r.pings[path] = l
	}
	return l
}
