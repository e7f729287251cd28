// Command bench is `make bench`: how fast is weft compared with what the
// kernel does. On a two-host testbed (network namespaces) it runs the same
// iperf3 and ping workloads over raw veth, kernel VXLAN and weft (plus any
// --extra path), interleaved, repeats them, and writes a Markdown table,
// results.json, a PNG chart and docs/benchmarks.md. Everything it creates
// is removed at exit, on error and on Ctrl-C/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// extraFlags collects repeated --extra NAME=CMD values.
type extraFlags []string

func (e *extraFlags) String() string     { return strings.Join(*e, ", ") }
func (e *extraFlags) Set(v string) error { *e = append(*e, v); return nil }

// config is the command line.
type config struct {
	bin       string
	out       string
	docs      string
	reps      int
	seconds   int
	pingCount int
	tcpCC     string // congestion control of the TCP workloads' senders ("": the namespace's default)
	micro     bool
	extras    extraFlags
	only      map[string]bool // workloads to run (empty: all)
	paths     map[string]bool // paths to measure (empty: all)
	queues    int             // weftd --queues on the weft path (0: weftd's default)
	txqlen    int             // weft0's txqueuelen on the weft path (0: as weftd leaves it)
	nice      int             // weftd --nice on the weft path (0: weftd's default)
	weftEtcd  string          // where the weft path's etcd runs: external (as flannel-udp's) or embedded (in host 1's weftd)
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding weftd and wireguard-go (without -paths, a path whose file is missing there is skipped; with -paths, an error)")
	flag.StringVar(&cfg.out, "out", "bench/out", "output directory (results.json, results.md, bench.png, logs)")
	flag.StringVar(&cfg.docs, "docs", "docs", "directory where benchmarks.md and benchmarks.png are regenerated (empty: don't)")
	flag.IntVar(&cfg.reps, "n", 3, "repetitions of every workload on every path")
	flag.IntVar(&cfg.seconds, "t", 5, "seconds per iperf3 run")
	flag.IntVar(&cfg.pingCount, "ping-count", 300, "pings per latency run (10 ms apart)")
	flag.StringVar(&cfg.tcpCC, "tcp-cc", "", "congestion control of every TCP workload's sender (iperf3 -C, e.g. cubic; empty: the kernel's default in the bench's namespaces, which is the host's)")
	flag.BoolVar(&cfg.micro, "micro", true, "also run the Go microbenchmarks of ./overlay/...")
	flag.IntVar(&cfg.queues, "weft-queues", 0, "weftd --queues on the weft path (0: weftd's default)")
	flag.StringVar(&cfg.weftEtcd, "weft-etcd", "external", "where the weft path's etcd runs: external (a member of its own in host 1's namespace, outside weftd, as the flannel-udp path has it) or embedded (inside host 1's weftd, --embedded-etcd-dir)")
	flag.IntVar(&cfg.nice, "weft-nice", 0, "weftd --nice on the weft path (0: weftd's default; a latency-under-load setting to measure, docs/flags.md)")
	flag.IntVar(&cfg.txqlen, "weft-txqueuelen", 0, "set weft0's txqueuelen on both weft hosts once weftd runs (0: leave it; a lever to measure)")
	flag.Var(&cfg.extras, "extra", "extra path NAME=CMD: CMD gets HOST1_NS, HOST2_NS, HOST1_IP, HOST2_IP, sets up an overlay and prints \"A B\" (repeatable)")
	only := flag.String("only", "", "comma-separated workloads to run (default all: "+workloadNames()+")")
	paths := flag.String("paths", "", "comma-separated paths to measure (default all: "+builtinNames()+" and the extras); only the beds and daemons they need are started")
	flag.Parse()
	if *paths != "" {
		cfg.paths = map[string]bool{}
		for _, p := range strings.Split(*paths, ",") {
			cfg.paths[strings.TrimSpace(p)] = true
		}
	}
	if *only != "" {
		cfg.only = map[string]bool{}
		for _, w := range strings.Split(*only, ",") {
			cfg.only[strings.TrimSpace(w)] = true
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Under `go run` a SIGTERM reaches only the go command: ask for one
	// ourselves when our parent dies, so the testbed is still removed.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0); err != nil {
		slog.Warn("parent-death signal not set", "err", err)
	}
	err := run(ctx, cfg)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "bench: interrupted; everything removed")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "bench: FAILED: %v\n", err)
		os.Exit(1)
	}
}
