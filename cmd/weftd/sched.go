package main

import (
	"log/slog"

	"github.com/weftnet/weft/cpusched"
)

// applySched gives every weftd thread --sched-slice and --nice (threads
// started later inherit them). A failure is one WARN and never fatal:
// weftd then runs with what it has.
func applySched(threads cpusched.Threads, s cpusched.Setting, logger *slog.Logger) {
	r, err := cpusched.Apply(threads, s)
	switch {
	case err != nil:
		logger.Warn("scheduler setting not applied; weftd's threads keep the kernel's defaults (packets may wait longer for a CPU under load)", "sched-slice", s.Slice, "nice", s.Nice, "threadsSet", r.Threads, "err", err)
	case r.NiceErr != nil:
		logger.Warn("nice value not lowered: weftd lacks CAP_SYS_NICE (weftd.service gives it none) and runs at its own; set it for weftd instead, e.g. systemd's Nice= in a drop-in, or --nice 0 to silence this", "nice", s.Nice, "sched-slice", s.Slice, "err", r.NiceErr)
	default:
		logger.Debug("scheduler setting applied", "sched-slice", s.Slice, "nice", s.Nice, "threads", r.Threads)
	}
}
