package main

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// stopGrace bounds a shutdown: after SIGTERM/SIGINT weftd exits within it
// even if some part hangs (systemd would otherwise wait for its own timeout).
const stopGrace = 15 * time.Second

// exitIfStopStalls exits the process (status 1) when run has not returned
// stopGrace after the stop signal.
func exitIfStopStalls(ctx context.Context, finished <-chan struct{}, log *slog.Logger) {
	select {
	case <-finished:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-finished:
	case <-t.C:
		log.Error("shutdown did not complete in time; exiting anyway", "grace", stopGrace)
		os.Exit(exitFailure)
	}
}
