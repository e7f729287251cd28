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

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/weftnet/weft/cpusched"
	"github.com/weftnet/weft/logjournal"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitClean
	}
	if err != nil {
		fmt.Fprintf(stderr, "weftd: %v\n", err)
		return exitConfig
	}
	if opts.version {
		fmt.Fprintln(stderr, "weftd", version)
		return exitClean
	}
	logger, err := newLogger(stderr, opts.logFormat, opts.logLevel, stderrIsJournal(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "weftd: %v\n", err)
		return exitConfig
	}
	if opts.cpuProfile != "" {
		stopProfile, err := startCPUProfile(opts.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "weftd: %v\n", err)
			return exitConfig
		}
		defer func() {
			if err := stopProfile(); err != nil {
				logger.Error("cpu profile", "err", err)
			}
		}()
	}
	applySched(cpusched.ProcThreads{}, opts.sched(), logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	finished := make(chan struct{})
	defer close(finished)
	go exitIfStopStalls(ctx, finished, logger)
	err = newDaemon(opts, logger).run(ctx)
	code := exitCode(err, ctx.Err() != nil)
	switch {
	case code == exitConfig:
		logger.Error("weftd cannot run as configured; fix the configuration (exit code 78, systemd does not restart)", "err", err)
	case code != exitClean:
		logger.Error("weftd stopped", "err", err, "exitCode", code)
	case err != nil:
		logger.Info("weftd stopped by a signal", "interrupted", err)
	default:
		logger.Info("weftd stopped cleanly")
	}
	return code
}

// newLogger makes weftd's logger. With journal set (stderr is the
// journal) every line starts with its syslog priority prefix.
func newLogger(w io.Writer, format, level string, journal bool) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	newHandler := func(w io.Writer) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, hopts)
		}
		return slog.NewTextHandler(w, hopts)
	}
	if journal {
		return slog.New(logjournal.WithPriorityPrefix(w, newHandler)), nil
	}
	return slog.New(newHandler(w)), nil
}

// stderrIsJournal reports whether w is the process's stderr and systemd
// connected it to the journal (JOURNAL_STREAM names its device and inode).
func stderrIsJournal(w io.Writer) bool {
	if w != io.Writer(os.Stderr) {
		return false
	}
	ok, err := journal.StderrIsJournalStream()
	return err == nil && ok
}

func envSet(name string) bool { return os.Getenv(name) != "" }
