package cpusched

import (
	"runtime"
	"testing"
	"time"
)

// The setting lands on every thread of this process, including threads
// the Go runtime starts afterwards (they inherit it from their creator).
// A fair slice needs no privilege; lowering the nice value needs
// CAP_SYS_NICE (root has it). Needs Linux >= 6.12 for the slice.
func TestProcThreadsSettingReachesLaterThreads(t *testing.T) {
	s := Setting{Slice: 300 * time.Microsecond, Nice: 0}
	before, err := ProcThreads{}.List()
	if err != nil {
		t.Fatal(err)
	}
	_, nice0, err := Get(before[0])
	if err != nil {
		t.Fatal(err)
	}
	privileged := ProcThreads{}.Set(before[0], 0, nice0-1) == nil
	if privileged {
		s.Nice = nice0 - 1
	}
	t.Cleanup(func() { // back to the kernel's default slice (the nice value cannot go back up without the privilege: this test process ends soon)
		tids, _ := ProcThreads{}.List()
		for _, tid := range tids {
			_ = ProcThreads{}.Set(tid, 0, MaxNice)
		}
	})
	r, err := Apply(ProcThreads{}, s)
	if err != nil || r.Threads < len(before) || r.NiceErr != nil {
		t.Fatalf("Apply = %+v, %v; %d threads before", r, err, len(before))
	}
	// New OS threads: goroutines locked to their threads.
	stop := make(chan struct{})
	defer close(stop)
	started := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started <- struct{}{}
			<-stop
		}()
	}
	for i := 0; i < 4; i++ {
		<-started
	}
	after, err := ProcThreads{}.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) <= len(before) {
		t.Fatalf("no new threads started (%d before, %d after)", len(before), len(after))
	}
	for _, tid := range after {
		slice, nice, err := Get(tid)
		if err != nil {
			t.Errorf("thread %d: %v", tid, err)
			continue
		}
		if slice != s.Slice || nice != s.Nice {
			t.Errorf("thread %d: slice %v nice %d, want %v and %d (Linux >= 6.12 needed for the slice)", tid, slice, nice, s.Slice, s.Nice)
		}
	}
	t.Logf("%d threads, %d of them started after Apply; privileged (nice lowered): %v", len(after), len(after)-len(before), privileged)
}
