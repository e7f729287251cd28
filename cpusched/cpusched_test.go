package cpusched

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type threadState struct {
	slice time.Duration
	nice  int
}

// fakeThreads is a process whose thread list can grow while Apply runs:
// spawn[tid] lists threads that appear once tid has been set. Without
// privileged it refuses to lower a nice value, as the kernel without
// CAP_SYS_NICE.
type fakeThreads struct {
	tids       []int
	spawn      map[int][]int
	gone       map[int]bool // exited, still listed
	fail       map[int]error
	privileged bool
	state      map[int]threadState // starts at nice 0 unless set
	lists      int
}

func (f *fakeThreads) List() ([]int, error) {
	f.lists++
	return append([]int(nil), f.tids...), nil
}

func (f *fakeThreads) Set(tid int, slice time.Duration, nice int) error {
	if f.gone[tid] {
		return ErrNoThread
	}
	if err := f.fail[tid]; err != nil {
		return err
	}
	if f.state == nil {
		f.state = map[int]threadState{}
	}
	cur := f.state[tid]
	want := min(nice, cur.nice)
	if want < cur.nice && !f.privileged {
		return ErrNicePermission
	}
	f.state[tid] = threadState{slice: slice, nice: want}
	f.tids = append(f.tids, f.spawn[tid]...)
	return nil
}

var weftd = Setting{Slice: 200 * time.Microsecond, Nice: -10}

func TestApplySetsEveryThread(t *testing.T) {
	f := &fakeThreads{tids: []int{10, 11, 12}, privileged: true}
	r, err := Apply(f, weftd)
	if err != nil || r.Threads != 3 || r.NiceErr != nil {
		t.Fatalf("Apply = %+v, %v; want 3 threads", r, err)
	}
	for _, tid := range f.tids {
		if f.state[tid] != (threadState{200 * time.Microsecond, -10}) {
			t.Errorf("thread %d: %+v", tid, f.state[tid])
		}
	}
}

// A thread already at a stronger nice value (systemd's Nice=) keeps it.
func TestApplyNeverRaisesNice(t *testing.T) {
	f := &fakeThreads{tids: []int{1, 2}, state: map[int]threadState{1: {nice: -15}, 2: {nice: -10}}}
	r, err := Apply(f, weftd)
	if err != nil || r.NiceErr != nil {
		t.Fatalf("Apply = %+v, %v", r, err)
	}
	if f.state[1].nice != -15 || f.state[2].nice != -10 || f.state[1].slice != weftd.Slice {
		t.Errorf("threads now %+v", f.state)
	}
}

// Without the privilege the nice value stays, the slice is still set on
// every thread, and the refusal is reported once.
func TestApplyWithoutNicePrivilegeStillSetsTheSlice(t *testing.T) {
	f := &fakeThreads{tids: []int{1, 2, 3}}
	r, err := Apply(f, weftd)
	if err != nil || r.Threads != 3 || !errors.Is(r.NiceErr, ErrNicePermission) || !strings.Contains(r.NiceErr.Error(), "nice -10") {
		t.Fatalf("Apply = %+v, %v; want 3 threads and the nice refusal", r, err)
	}
	for _, tid := range f.tids {
		if f.state[tid] != (threadState{slice: weftd.Slice}) {
			t.Errorf("thread %d: %+v", tid, f.state[tid])
		}
	}
}

// A thread cloned during the pass by a thread set before it inherits the
// setting, but one cloned by a thread not yet set does not: the rescan
// finds both and sets them, and ends when a pass finds nothing new.
func TestApplyRescansForThreadsStartedMeanwhile(t *testing.T) {
	f := &fakeThreads{tids: []int{1, 2}, spawn: map[int][]int{2: {3}, 3: {4}}, privileged: true}
	r, err := Apply(f, weftd)
	if err != nil || r.Threads != 4 {
		t.Fatalf("Apply = %+v, %v; want 4 threads", r, err)
	}
	for _, tid := range []int{1, 2, 3, 4} {
		if f.state[tid].slice != weftd.Slice || f.state[tid].nice != weftd.Nice {
			t.Errorf("thread %d started meanwhile: %+v", tid, f.state[tid])
		}
	}
	if f.lists != 4 {
		t.Errorf("listed the threads %d times, want 4 (3 passes finding new ones, 1 finding none)", f.lists)
	}
}

func TestApplyBoundsItsPasses(t *testing.T) {
	// Every thread set starts another: the scan must end.
	spawn := map[int][]int{}
	for i := 1; i < 100; i++ {
		spawn[i] = []int{i + 1}
	}
	f := &fakeThreads{tids: []int{1}, spawn: spawn, privileged: true}
	r, err := Apply(f, weftd)
	if err == nil || !strings.Contains(err.Error(), "still appearing") {
		t.Fatalf("Apply = %+v, %v; want an error after %d passes", r, err, maxPasses)
	}
	if f.lists != maxPasses || r.Threads != maxPasses {
		t.Errorf("%d lists, %d set; want %d each", f.lists, r.Threads, maxPasses)
	}
}

// A thread that exited but is still listed for a moment is skipped, and
// does not keep the rescans going (it did: every pass counted it new).
func TestApplySkipsExitedThreads(t *testing.T) {
	f := &fakeThreads{tids: []int{1, 2, 3}, gone: map[int]bool{2: true}, privileged: true}
	r, err := Apply(f, weftd)
	if err != nil || r.Threads != 2 {
		t.Fatalf("Apply = %+v, %v; want 2 threads and no error", r, err)
	}
}

func TestApplyReportsTheFailingThread(t *testing.T) {
	eperm := errors.New("operation not permitted")
	f := &fakeThreads{tids: []int{1, 2, 3}, fail: map[int]error{2: eperm}, privileged: true}
	r, err := Apply(f, weftd)
	if !errors.Is(err, eperm) || !strings.Contains(err.Error(), "thread 2") {
		t.Fatalf("Apply = %+v, %v; want the error naming thread 2", r, err)
	}
	if r.Threads != 1 {
		t.Errorf("%d threads set before the failure, want 1", r.Threads)
	}
}

func TestSettingCheck(t *testing.T) {
	for _, ok := range []Setting{{}, {Slice: MinSlice}, {Slice: DefaultSlice, Nice: DefaultNice}, {Slice: MaxSlice, Nice: MaxNice}, {Nice: MinNice}} {
		if err := ok.Check(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Setting{{Slice: -time.Millisecond}, {Slice: time.Nanosecond}, {Slice: MinSlice - 1}, {Slice: MaxSlice + 1}, {Nice: -21}, {Nice: 20}} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
		f := &fakeThreads{tids: []int{1}, privileged: true}
		if _, err := Apply(f, bad); err == nil || len(f.state) != 0 {
			t.Errorf("Apply(%+v) = %v, set %d threads", bad, err, len(f.state))
		}
	}
}

// The zero setting (weftd's default) makes no call at all, and nice 0
// leaves a thread's own nice value, whatever it is.
func TestApplyZeroLeavesThreadsAlone(t *testing.T) {
	f := &fakeThreads{tids: []int{1}}
	if r, err := Apply(f, Setting{}); err != nil || r.Threads != 0 || f.lists != 0 {
		t.Fatalf("Apply(zero) = %+v, %v after %d lists; want nothing done", r, err, f.lists)
	}
	f = &fakeThreads{tids: []int{1, 2}, state: map[int]threadState{1: {nice: 5}, 2: {nice: -3}}}
	r, err := Apply(f, Setting{Slice: MinSlice})
	if err != nil || r.NiceErr != nil || r.Threads != 2 {
		t.Fatalf("Apply = %+v, %v", r, err)
	}
	if f.state[1] != (threadState{MinSlice, 5}) || f.state[2] != (threadState{MinSlice, -3}) {
		t.Errorf("nice 0 changed a thread's own nice value: %+v", f.state)
	}
}
