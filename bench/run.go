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

	pl, err := planPaths(cfg.paths, extras, binDir, machineCheck{
		stat:     func(p string) error { _, err := os.Stat(p); return err },
		lookPath: func(n string) error { _, err := exec.LookPath(n); return err },
	})
	if err != nil {
		return err
	}
	for _, s := range pl.skipped {
		slog.Warn("skipping a path", "reason", s)
	}
	if cfg.weftEtcd != "embedded" && cfg.weftEtcd != "external" {
		return fmt.Errorf("-weft-etcd %q: want external or embedded", cfg.weftEtcd)
	}

	// Everything started is stopped on every way out, last started first;
	// a failed stop is reported once, here, also after the early teardown
	// below.
	var stops cleanups
	defer func() {
		if cerr := stops.run(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()

	rep := &report{Date: started, Machine: describeMachine(iperfVersion), Reps: cfg.reps,
		Seconds: cfg.seconds, PingCount: cfg.pingCount, TCPCongestionControl: cfg.tcpCC, Only: cfg.only}
	var bed *testbed.Bed
	wo := weftOptions{queues: cfg.queues, txqlen: cfg.txqlen, nice: cfg.nice}
	if pl.mainBed {
		slog.Info("creating a two-host testbed")
		// IPv6 underlay addresses too: raw veth's IPv6 endpoints (weft's UDP
		// peers are still reached over IPv4 on a dual-stack underlay).
		bed, err = testbed.NewBed("wb", 2, testbed.Options{IPv6: true})
		if err != nil {
			return err
		}
		stops.push(bed.Close)
		slog.Info("testbed ready", "host1", bed.Hosts[0].NS.Name, "host2", bed.Hosts[1].NS.Name)
		if pl.has(pathWeft) && cfg.weftEtcd == "external" {
			url, stopEtcd, eerr := flannel.StartEtcdIn(bed.Hosts[0], filepath.Join(stateDir, "weft-etcd"))
			if eerr != nil {
				return fmt.Errorf("weft: %w", eerr)
			}
			wo.etcd = url
			stops.push(func() error { stopEtcd(); return nil })
		}
	}
	paths, weft, err := setupPaths(ctx, pl, bed, binDir, stateDir, logDir, wo, &stops)
	if err != nil {
		return err
	}
	rep.Paths, rep.Skipped = paths, pl.skipped
	var names []string
	for _, p := range paths {
		names = append(names, p.Name)
	}
	rep.Results = newResults(names)

	r := &runner{bed: bed, seconds: cfg.seconds, pingCount: cfg.pingCount, tcpCC: cfg.tcpCC, logDir: logDir, res: rep.Results,
		weft: weft, only: cfg.only}
	slog.Info("measuring", "paths", names, "repetitions", cfg.reps, "seconds", cfg.seconds)
	if err := r.run(ctx, paths, cfg.reps); err != nil {
		return err
	}
	rep.Failures, rep.Warnings = r.failures, r.warnings
	_ = stops.run() // before the microbenchmarks; its error is returned by the defer above

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

// setupPaths builds the planned paths on bed (the main bed, nil when no
// planned path needs it) or on beds of their own, and checks that each
// one carries traffic. Whatever it starts is pushed on stops as soon as
// there is something to stop (also on an error). The weft path's cluster
// is returned to read weftd's CPU use.
func setupPaths(ctx context.Context, pl plan, bed *testbed.Bed, binDir, stateDir, logDir string, wo weftOptions, stops *cleanups) (paths []*path, weft *cluster.Cluster, err error) {
	for _, name := range pl.build {
		var p *path
		switch name {
		case pathRaw:
			p = rawPath(bed)
		case pathVXLAN:
			slog.Info("setting up kernel VXLAN")
			p, err = vxlanPath(ctx, bed)
		case pathWeft:
			slog.Info("starting weftd on both hosts", "weftd", filepath.Join(binDir, "weftd"))
			var c *cluster.Cluster
			p, c, err = weftPath(ctx, bed, binDir, stateDir, wo)
			if c != nil {
				weft = c
				stops.push(func() error {
					cerr := c.Close()
					copyWeftLogs(c, logDir)
					if cerr != nil {
						return fmt.Errorf("stop weftd: %w", cerr)
					}
					return nil
				})
			}
		case pathWeftDirect:
			slog.Info("starting weftd with DirectRouting on a bed of its own")
			var c *cluster.Cluster
			var dbed *testbed.Bed
			p, c, dbed, err = weftDirectPath(ctx, binDir, stateDir)
			stops.push(func() error {
				var errs []error
				if c != nil {
					if err := c.Close(); err != nil {
						errs = append(errs, fmt.Errorf("stop weftd (direct): %w", err))
					}
					copyDirectLogs(c, logDir)
				}
				if dbed != nil {
					if err := dbed.Close(); err != nil {
						errs = append(errs, fmt.Errorf("cleanup (direct bed): %w", err))
					}
				}
				return errors.Join(errs...)
			})
		case pathWeftVXLAN:
			slog.Info("starting weftd with the vxlan backend on a bed of its own")
			var stop func() error
			p, stop, err = weftVXLANPath(ctx, binDir, stateDir, logDir)
			stops.push(stop)
		case pathWeftWireGuard:
			// The encrypted paths: weft's wireguard backend and the standalone
			// wireguard-go of the same module, each on a bed of its own.
			slog.Info("starting weftd with the wireguard backend on a bed of its own")
			var c *cluster.Cluster
			var wbed *testbed.Bed
			p, c, wbed, err = weftWireGuardPath(ctx, binDir, stateDir)
			stops.push(func() error {
				var errs []error
				if c != nil {
					if err := c.Close(); err != nil {
						errs = append(errs, fmt.Errorf("stop weftd (wireguard): %w", err))
					}
				}
				if wbed != nil {
					if err := wbed.Close(); err != nil {
						errs = append(errs, fmt.Errorf("cleanup (wireguard bed): %w", err))
					}
				}
				return errors.Join(errs...)
			})
		case pathWireGuardGo:
			slog.Info("starting the standalone wireguard-go on a bed of its own")
			var w *wireGuardGo
			p, w, err = wireGuardGoPath(ctx, binDir, logDir)
			stops.push(w.close)
		case pathFlannelUDP:
			slog.Info("starting the real flanneld (udp backend) on a bed of its own")
			var stop func() error
			p, stop, err = flannelUDPPath(ctx, stateDir)
			stops.push(stop)
		default:
			err = fmt.Errorf("path %s: no set-up for it", name)
		}
		if err != nil {
			return nil, weft, err
		}
		paths = append(paths, p)
	}
	for _, e := range pl.extras {
		slog.Info("setting up extra path", "name", e[0])
		p, err := extraPath(ctx, bed, e[0], e[1])
		if err != nil {
			return nil, weft, err
		}
		paths = append(paths, p)
	}
	for _, p := range paths {
		pbed := bed
		if p.bed != nil {
			pbed = p.bed
		}
		if err := waitReachable(ctx, pbed, p); err != nil {
			return nil, weft, err
		}
		slog.Info("path ready", "path", p.Name, "a", p.A, "b", p.B, "a6", p.A6, "b6", p.B6)
	}
	return paths, weft, nil
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

// cleanups are the stops of everything a run started: run calls them
// once, last pushed first (daemons before the etcd they use, before the
// namespaces they run in), however often it is called, and joins their
// errors. A nil stop is ignored.
type cleanups struct {
	stops []func() error
	done  bool
	err   error
}

func (c *cleanups) push(stop func() error) {
	if stop != nil {
		c.stops = append(c.stops, stop)
	}
}

func (c *cleanups) run() error {
	if c.done {
		return c.err
	}
	c.done = true
	if len(c.stops) > 0 {
		slog.Info("removing the testbeds")
	}
	var errs []error
	for i := len(c.stops) - 1; i >= 0; i-- {
		errs = append(errs, c.stops[i]())
	}
	c.err = errors.Join(errs...)
	return c.err
}
