package cpusched

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxThreads bounds the read of /proc/self/task.
const maxThreads = 4096

// ProcThreads is Threads of this process: /proc/self/task and
// sched_setattr(2).
type ProcThreads struct{}

// List reads /proc/self/task.
func (ProcThreads) List() ([]int, error) {
	d, err := os.Open("/proc/self/task")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(maxThreads)
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/task: %w", err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		tid, err := strconv.Atoi(n)
		if err != nil {
			return nil, fmt.Errorf("/proc/self/task/%q: not a thread id", n)
		}
		tids = append(tids, tid)
	}
	return tids, nil
}

// Set sets the thread's fair slice and nice value with sched_setattr.
// A thread of a policy that is not fair (someone made it real-time) is
// left alone with an error.
func (ProcThreads) Set(tid int, slice time.Duration, nice int) error {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNoThread
		}
		return fmt.Errorf("sched_getattr: %w", err)
	}
	if attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH {
		return fmt.Errorf("policy %d is not a fair one: left alone", attr.Policy)
	}
	want := min(int32(nice), attr.Nice)
	next := unix.SchedAttr{Policy: attr.Policy, Nice: want, Runtime: uint64(slice.Nanoseconds())}
	if err := unix.SchedSetAttr(tid, &next, 0); err != nil {
		switch {
		case errors.Is(err, unix.ESRCH):
			return ErrNoThread
		case errors.Is(err, unix.EPERM) && want < attr.Nice:
			return fmt.Errorf("%w: %w", ErrNicePermission, err)
		}
		return fmt.Errorf("sched_setattr: %w", err)
	}
	return nil
}

// Get reads a thread's slice and nice value back (sched_getattr's
// sched_runtime is the slice of a fair task).
func Get(tid int) (slice time.Duration, nice int, err error) {
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("sched_getattr %d: %w", tid, err)
	}
	return time.Duration(attr.Runtime), int(attr.Nice), nil
}
