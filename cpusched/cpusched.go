// Package cpusched asks the kernel to give weftd's threads a CPU promptly
// when they wake, without a real-time class: a nice value below 0 (a
// larger share of a contended CPU: a busy weftd is not left waiting
// behind the task that feeds it, so no standing queue builds in front of
// it) and, optionally (off by default), a short EEVDF slice (sched_setattr(2), SCHED_OTHER
// with sched_runtime, Linux >= 6.12: a woken task with a shorter slice
// than the running one gets the earlier virtual deadline and preempts
// it). Both stay in the fair class: every other task keeps a share in
// proportion to its weight, so nothing is starved. Threads cloned later
// inherit both from the thread that clones them, so setting every
// existing thread covers the threads the Go runtime starts afterwards.
package cpusched

import (
	"errors"
	"fmt"
	"time"
)

// The kernel clamps a fair task's custom slice to [0.1 ms, 100 ms].
const (
	MinSlice = 100 * time.Microsecond
	MaxSlice = 100 * time.Millisecond
)

// Nice values (setpriority(2)): -20 (largest share) to 19.
const (
	MinNice = -20
	MaxNice = 19
)

// Defaults for weftd (measured in bench/tried.md, issue 22): both off.
// Nice -10 brought the ping under a TCP stream from 4-7x its idle time to
// 1.3-1.8x, but TCP 1 stream fell to 0.75x (0.87x by the ratio to VXLAN
// in the same runs), below the 0.9x bar: an operator's choice (--nice), not
// the default. A 100 us slice alone changed nothing.
const (
	DefaultSlice = 0
	DefaultNice  = 0
)

// Setting is what Apply gives every thread.
type Setting struct {
	// Slice is the fair slice; 0 keeps the kernel's default.
	Slice time.Duration
	// Nice is the nice value to run at at most: a thread already at a
	// lower value (a stronger one, e.g. from systemd's Nice=) keeps its
	// own; a thread is never given a weaker one. 0 leaves every thread's
	// own (weftd started with nice 5 stays at 5).
	Nice int
}

// ErrNoThread is what Threads.Set returns for a thread that has exited.
var ErrNoThread = errors.New("no such thread")

// ErrNicePermission is what Threads.Set returns when lowering the nice
// value needs a privilege the process lacks (CAP_SYS_NICE).
var ErrNicePermission = errors.New("lowering the nice value needs CAP_SYS_NICE")

// Threads is the kernel's side: the process's threads and their settings.
type Threads interface {
	// List returns the thread ids of this process.
	List() ([]int, error)
	// Set gives thread tid the fair slice (0: the kernel's default) and
	// the nice value min(nice, its current one), in the fair class.
	Set(tid int, slice time.Duration, nice int) error
}

// Check validates a setting.
func (s Setting) Check() error {
	if s.Slice != 0 && (s.Slice < MinSlice || s.Slice > MaxSlice) {
		return fmt.Errorf("scheduler slice %v: must be 0 (kernel default) or between %v and %v", s.Slice, MinSlice, MaxSlice)
	}
	if s.Nice < MinNice || s.Nice > MaxNice {
		return fmt.Errorf("nice %d: must be between %d and %d", s.Nice, MinNice, MaxNice)
	}
	return nil
}

// maxPasses bounds the rescans of the thread list: a thread cloned by a
// thread not yet set during a pass is found by the next one.
const maxPasses = 8

// Result says what Apply did.
type Result struct {
	Threads int // threads set
	// NiceErr is why the nice value could not be lowered (the slice was
	// still applied): nil when it was, or needed no change.
	NiceErr error
}

// Apply gives every thread of the process the setting; the zero Setting
// touches nothing. It rescans the
// thread list until a pass finds no thread it has not set (at most
// maxPasses), so that a thread cloned meanwhile by a thread not yet set
// is not missed. A thread that exits meanwhile is no error. Without the
// privilege to lower the nice value it keeps every thread's own and
// still sets the slice (Result.NiceErr says so). Any other failure ends
// it with an error naming the thread.
func Apply(t Threads, s Setting) (Result, error) {
	var r Result
	if err := s.Check(); err != nil {
		return r, err
	}
	if s == (Setting{}) {
		return r, nil // nothing to set
	}
	if s.Nice == 0 {
		s.Nice = MaxNice // keep each thread's own
	}
	set := map[int]bool{}
	gone := map[int]bool{} // exited, maybe still listed for a moment
	for pass := 0; pass < maxPasses; pass++ {
		tids, err := t.List()
		if err != nil {
			return r, fmt.Errorf("scheduler setting: list threads: %w", err)
		}
		fresh := 0
		for _, tid := range tids {
			if set[tid] || gone[tid] {
				continue
			}
			fresh++
			err := t.Set(tid, s.Slice, s.Nice)
			if errors.Is(err, ErrNicePermission) && r.NiceErr == nil {
				r.NiceErr = fmt.Errorf("nice %d for thread %d: %w", s.Nice, tid, err)
				s.Nice = MaxNice // keep each thread's own
				err = t.Set(tid, s.Slice, s.Nice)
			}
			switch {
			case errors.Is(err, ErrNoThread):
				gone[tid] = true
				continue
			case err != nil:
				return r, fmt.Errorf("scheduler setting (slice %v, nice %d) for thread %d: %w", s.Slice, s.Nice, tid, err)
			}
			set[tid] = true
			r.Threads = len(set)
		}
		if fresh == 0 {
			return r, nil
		}
	}
	return r, fmt.Errorf("scheduler setting: threads still appearing after %d passes (%d set)", maxPasses, len(set))
}
