//go:build !unit

package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/cpusched"
)

// fakeThreads refuses a lower nice value (no CAP_SYS_NICE) or everything.
type fakeThreads struct {
	refuseAll bool
	calls     int
	slices    map[int]time.Duration
}

func (f *fakeThreads) List() ([]int, error) { return []int{1, 2, 3}, nil }
func (f *fakeThreads) Set(tid int, slice time.Duration, nice int) error {
	f.calls++
	switch {
	case f.refuseAll:
		return errors.New("operation not permitted")
	case nice < 0:
		return cpusched.ErrNicePermission
	}
	if f.slices == nil {
		f.slices = map[int]time.Duration{}
	}
	f.slices[tid] = slice
	return nil
}

func logTo(buf *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

// A setting the kernel refuses is one WARN line and weftd goes on; without
// CAP_SYS_NICE the slice is still set and the nice refusal said once.
func TestSchedFailureIsLoggedOnceNotFatal(t *testing.T) {
	var buf bytes.Buffer
	f := &fakeThreads{refuseAll: true}
	applySched(f, cpusched.Setting{Slice: 100 * time.Microsecond, Nice: -10}, logTo(&buf))
	if log := buf.String(); strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "operation not permitted") || !strings.Contains(log, "sched-slice=100µs") {
		t.Fatalf("want one WARN naming the slice and the error, got:\n%s", log)
	}
	if f.calls != 1 {
		t.Errorf("%d attempts after a refusal, want 1", f.calls)
	}

	buf.Reset()
	f = &fakeThreads{}
	applySched(f, cpusched.Setting{Slice: 100 * time.Microsecond, Nice: -10}, logTo(&buf))
	if log := buf.String(); strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "CAP_SYS_NICE") {
		t.Fatalf("want one WARN about the nice value, got:\n%s", log)
	}
	if len(f.slices) != 3 || f.slices[3] != 100*time.Microsecond {
		t.Errorf("slice not set on every thread without CAP_SYS_NICE: %v", f.slices)
	}

	// --nice alone (no slice, as under weftd.service with WEFTD_NICE=-10):
	// one WARN that names what is missing and the remedy, and claims no
	// slice.
	buf.Reset()
	applySched(&fakeThreads{}, cpusched.Setting{Nice: -10}, logTo(&buf))
	if log := buf.String(); strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "lacks CAP_SYS_NICE") ||
		!strings.Contains(log, "Nice=") || !strings.Contains(log, "sched-slice=0s") || strings.Contains(log, "slice is set") {
		t.Fatalf("want one WARN naming CAP_SYS_NICE, Nice= and no slice, got:\n%s", log)
	}

	buf.Reset()
	applySched(&fakeThreads{}, cpusched.Setting{}, logTo(&buf))
	if strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("--sched-slice 0 --nice 0 warned: %s", buf.String())
	}
}

func TestSchedFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.sched() != (cpusched.Setting{Slice: cpusched.DefaultSlice, Nice: cpusched.DefaultNice}) {
		t.Errorf("default %+v", o.sched())
	}
	t.Setenv("WEFTD_SCHED_SLICE", "150us")
	t.Setenv("WEFTD_NICE", "0")
	if o, err = parseFlags(nil, io.Discard); err != nil || o.sched() != (cpusched.Setting{Slice: 150 * time.Microsecond}) {
		t.Errorf("WEFTD_SCHED_SLICE=150us WEFTD_NICE=0: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"--sched-slice", "50us"}, {"--sched-slice", "1s"}, {"--sched-slice", "-1ms"}, {"--nice", "-21"}, {"--nice", "20"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil || !strings.Contains(err.Error(), "--sched-slice / --nice") {
			t.Errorf("%v: want an error naming the flags, got %v", bad, err)
		}
	}
}
