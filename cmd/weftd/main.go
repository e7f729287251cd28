// Command weftd is the weft node daemon: it takes a subnet lease for this
// host from etcd, creates the TUN device, and forwards packets between the
// TUN and UDP peers found in the lease table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "weftd: %v\n", err)
		return 2
	}
	if opts.version {
		fmt.Fprintln(stderr, "weftd", version)
		return 0
	}
	logger, err := newLogger(stderr, opts.logFormat, opts.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "weftd: %v\n", err)
		return 2
	}
	if opts.cpuProfile != "" {
		stopProfile, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "weftd: %v\n", err)
			return 2
		}
		defer func() {
			if err := stopProfile(); err != nil {
				logger.Error("cpu profile", "err", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := newDaemon(opts, logger).run(ctx); err != nil {
		logger.Error("weftd stopped", "err", err)
		return 1
	}
	logger.Info("weftd stopped cleanly")
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return slog.New(slog.NewTextHandler(w, hopts)), nil
}

func envSet(name string) bool { return os.Getenv(name) != "" }
