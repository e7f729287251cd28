package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/testbed/flannel"
)

// checkTools fails with a clear message when something the harness needs
// is missing (installing it is `make deps`' job, not the harness's).
func checkTools() (iperfVersion string, err error) {
	if err := testbed.CheckRoot(); err != nil {
		return "", err
	}
	for _, tool := range []struct{ name, pkg string }{{"iperf3", "iperf3"}, {"ping", "iputils-ping"}, {"ss", "iproute2"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return "", fmt.Errorf("%s is not installed (apt-get install -y %s, or make deps): %w", tool.name, tool.pkg, err)
		}
	}
	out, err := exec.Command("iperf3", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("iperf3 --version: %w", err)
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), nil
}

func run(ctx context.Context, cfg config) (err error) {
	started := time.Now()
	if cfg.reps < 1 || cfg.seconds < 1 || cfg.pingCount < 10 {
		return errors.New("-n and -t must be at least 1, -ping-count at least 10")
	}
	var extras [][2]string
	for _, e := range cfg.extras {
		name, command, err := parseExtra(e)
		if err != nil {
			return err
		}
		extras = append(extras, [2]string{name, command})
	}
	iperfVersion, err := checkTools()
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	moduleRoot, err := findModuleRoot(cwd)
	if err != nil {
		return err
	}
	binDir, err := filepath.Abs(cfg.bin)
	if err != nil {
		return err
	}
	logDir := filepath.Join(cfg.out, "logs")
	if err := os.RemoveAll(logDir); err != nil {
		return err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)

	slog.Info("creating a two-host testbed")
	// IPv6 underlay addresses too: raw veth's IPv6 endpoints (weft's UDP
	// peers are still reached over IPv4 on a dual-stack underlay).
	bed, err := testbed.NewBed("wb", 2, testbed.Options{IPv6: true})
	if err != nil {
		return err
	}
	slog.Info("testbed ready", "host1", bed.Hosts[0].NS.Name, "host2", bed.Hosts[1].NS.Name)
	closed := false
	closeBed := func() {
		if closed {
			return
		}
		closed = true
		slog.Info("removing the testbed")
		if cerr := bed.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}
	defer func() { closeBed() }() // closeBed grows a weftd stop below

	rep := &report{Date: started, Machine: describeMachine(iperfVersion), Reps: cfg.reps,
		Seconds: cfg.seconds, PingCount: cfg.pingCount, Only: cfg.only}
	wo := weftOptions{queues: cfg.queues, txqlen: cfg.txqlen, nice: cfg.nice}
	switch cfg.weftEtcd {
	case "embedded":
	case "external":
		url, stopEtcd, eerr := flannel.StartEtcdIn(bed.Hosts[0], filepath.Join(stateDir, "weft-etcd"))
		if eerr != nil {
			return fmt.Errorf("weft: %w", eerr)
		}
		wo.etcd = url
		closeBedOnly := closeBed
		stopped := false
		closeBed = func() {
			closeBedOnly()
			if !stopped {
				stopped = true
				stopEtcd()
			}
		}
	default:
		return fmt.Errorf("-weft-etcd %q: want external or embedded", cfg.weftEtcd)
	}
	paths, weft, skipped, stopDirect, err := setupPaths(ctx, bed, binDir, stateDir, logDir, extras, wo)
	if stopDirect != nil {
		closeBedOnly := closeBed
		closeBed = func() {
			if cerr := stopDirect(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			closeBedOnly()
		}
	}
	if weft != nil {
		closeBedOnly := closeBed
		closeBed = func() {
			if cerr := weft.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("stop weftd: %w", cerr))
			}
			copyWeftLogs(weft, logDir)
			closeBedOnly()
		}
	}
	if err != nil {
		return err
	}
	if cfg.paths != nil {
		kept := paths[:0]
		for _, p := range paths {
			if cfg.paths[p.Name] {
				kept = append(kept, p)
			}
		}
		paths = kept
	}
	rep.Paths, rep.Skipped = paths, skipped
	var names []string
	for _, p := range paths {
		names = append(names, p.Name)
	}
	rep.Results = newResults(names)

	r := &runner{bed: bed, seconds: cfg.seconds, pingCount: cfg.pingCount, logDir: logDir, res: rep.Results,
		weft: weft, only: cfg.only}
	slog.Info("measuring", "paths", names, "repetitions", cfg.reps, "seconds", cfg.seconds)
	if err := r.run(ctx, paths, cfg.reps); err != nil {
		return err
	}
	rep.Failures, rep.Warnings = r.failures, r.warnings
	closeBed()

	if cfg.micro {
		slog.Info("running the Go microbenchmarks", "package", microPackage)
		out, merr := runMicro(ctx, moduleRoot)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rep.Micro = out
		if merr != nil {
			rep.MicroErr = merr.Error()
			slog.Warn("microbenchmarks", "err", merr)
		}
	} else {
		rep.MicroErr = "not run (-micro=false)"
	}
	if tried, terr := os.ReadFile(filepath.Join(moduleRoot, "bench", "tried.md")); terr == nil {
		rep.Tried = string(tried)
	}
	rep.Duration = time.Since(started)
	rep.Machine.LoadEnd = loadAverage()
	if err := writeOutputs(rep, cfg); err != nil {
		return err
	}
	return rep.verdict()
}

// setupPaths builds raw, VXLAN, weft and weft direct (when bin/weftd
// exists) and the extra paths, and checks that each one carries traffic.
// The weft cluster and what stops weft direct (its cluster and bed) are
// returned (even with an error) so that the caller stops them.
func setupPaths(ctx context.Context, bed *testbed.Bed, binDir, stateDir, logDir string, extras [][2]string, wo weftOptions) (paths []*path, weft *cluster.Cluster, skipped []string, stopDirect func() error, err error) {
	paths = append(paths, rawPath(bed))
	slog.Info("setting up kernel VXLAN")
	vx, err := vxlanPath(ctx, bed)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	paths = append(paths, vx)
	weftd := filepath.Join(binDir, "weftd")
	if _, statErr := os.Stat(weftd); statErr != nil {
		msg := fmt.Sprintf("weft: %s not found (build it: go build -o bin/weftd ./cmd/weftd, or make build)", weftd)
		slog.Warn("skipping the weft paths", "reason", msg)
		skipped = append(skipped, msg)
	} else {
		slog.Info("starting weftd on both hosts", "weftd", weftd)
		wp, c, err := weftPath(ctx, bed, binDir, stateDir, wo)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		weft = c
		paths = append(paths, wp)
		slog.Info("starting weftd with DirectRouting on a second bed")
		dp, dc, dbed, derr := weftDirectPath(ctx, binDir, stateDir)
		if dbed != nil {
			stopDirect = func() error {
				var errs []error
				if dc != nil {
					if err := dc.Close(); err != nil {
						errs = append(errs, fmt.Errorf("stop weftd (direct): %w", err))
					}
					copyDirectLogs(dc, logDir)
				}
				if err := dbed.Close(); err != nil {
					errs = append(errs, fmt.Errorf("cleanup (direct bed): %w", err))
				}
				return errors.Join(errs...)
			}
		}
		if derr != nil {
			return nil, weft, nil, stopDirect, derr
		}
		paths = append(paths, dp)
		slog.Info("starting weftd with the vxlan backend on a third bed")
		vp, vstop, verr := weftVXLANPath(ctx, binDir, stateDir, logDir)
		stopDirect = chainStops(stopDirect, vstop)
		if verr != nil {
			return nil, weft, nil, stopDirect, verr
		}
		paths = append(paths, vp)

		// The encrypted paths: weft's wireguard backend and the standalone
		// wireguard-go of the same module, each on a bed of its own.
		slog.Info("starting weftd with the wireguard backend on a third bed")
		wgp, wgc, wgbed, wgerr := weftWireGuardPath(ctx, binDir, stateDir)
		stopDirect = chainStops(stopDirect, func() error {
			var errs []error
			if wgc != nil {
				if err := wgc.Close(); err != nil {
					errs = append(errs, fmt.Errorf("stop weftd (wireguard): %w", err))
				}
			}
			if wgbed != nil {
				if err := wgbed.Close(); err != nil {
					errs = append(errs, fmt.Errorf("cleanup (wireguard bed): %w", err))
				}
			}
			return errors.Join(errs...)
		})
		if wgerr != nil {
			return nil, weft, nil, stopDirect, wgerr
		}
		paths = append(paths, wgp)
		slog.Info("starting the standalone wireguard-go on a fourth bed")
		gop, gow, goerr := wireGuardGoPath(ctx, binDir, logDir)
		stopDirect = chainStops(stopDirect, gow.close)
		if goerr != nil {
			return nil, weft, nil, stopDirect, goerr
		}
		paths = append(paths, gop)
	}
	slog.Info("starting the real flanneld (udp backend) on a bed of its own")
	fp, fstop, ferr := flannelUDPPath(ctx, stateDir)
	stopDirect = chainStops(stopDirect, fstop)
	if ferr != nil {
		return nil, weft, nil, stopDirect, ferr
	}
	paths = append(paths, fp)
	for _, e := range extras {
		slog.Info("setting up extra path", "name", e[0])
		p, err := extraPath(ctx, bed, e[0], e[1])
		if err != nil {
			return nil, weft, nil, stopDirect, err
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		pbed := bed
		if p.bed != nil {
			pbed = p.bed
		}
		if err := waitReachable(ctx, pbed, p); err != nil {
			return nil, weft, nil, stopDirect, err
		}
		slog.Info("path ready", "path", p.Name, "a", p.A, "b", p.B, "a6", p.A6, "b6", p.B6)
	}
	return paths, weft, skipped, stopDirect, nil
}

// writeOutputs prints the table and writes results.json, results.md, the
// chart and (with -docs) docs/benchmarks.md with its image.
func writeOutputs(rep *report, cfg config) error {
	table := markdownTable(rep.Results)
	fmt.Println()
	fmt.Print(table)
	fmt.Println()
	data, err := rep.json()
	if err != nil {
		return fmt.Errorf("results.json: %w", err)
	}
	if err := writeFile(filepath.Join(cfg.out, "results.json"), data); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cfg.out, "results.md"), []byte(rep.markdown("bench.png"))); err != nil {
		return err
	}
	chart := filepath.Join(cfg.out, "bench.png")
	if err := writeChart(rep.Results, rep.chartTitle(), chart); err != nil {
		return err
	}
	slog.Info("wrote", "json", filepath.Join(cfg.out, "results.json"), "chart", chart)
	if cfg.docs == "" {
		return nil
	}
	png, err := os.ReadFile(chart)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(cfg.docs, "benchmarks.png"), png); err != nil {
		return err
	}
	doc := filepath.Join(cfg.docs, "benchmarks.md")
	old, _ := os.ReadFile(doc) // a missing file has no section to keep
	if err := writeFile(doc, []byte(keepSection(string(old), rep.markdown("benchmarks.png")))); err != nil {
		return err
	}
	slog.Info("regenerated", "doc", filepath.Join(cfg.docs, "benchmarks.md"))
	return nil
}

// verdict fails the run when a path measured nothing for some metric.
func (rep *report) verdict() error {
	var missing []string
	for _, p := range rep.Results.Paths {
		for _, m := range allMetrics {
			if m.WeftOnly && p != pathWeft {
				continue
			}
			if rep.Only != nil && (!rep.Only[workloadOf(m.Key)] || needsIdleLatency(m.Key) && !rep.Only["latency"]) {
				continue
			}
			if _, ok := rep.Results.NotMeasured[p+"/"+reasonKey(m.Key)]; ok {
				continue
			}
			if rep.Results.summary(p, m.Key).N == 0 {
				missing = append(missing, p+"/"+m.Key)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no samples for %s (see %d failures above)", strings.Join(missing, ", "), len(rep.Failures))
	}
	return nil
}

// chainStops runs both stops (either may be nil) once, however often it
// is called (the run stops the side beds on every way out), and joins
// their errors.
func chainStops(a, b func() error) func() error {
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			var errs []error
			for _, f := range []func() error{a, b} {
				if f != nil {
					errs = append(errs, f())
				}
			}
			err = errors.Join(errs...)
		})
		return err
	}
}
