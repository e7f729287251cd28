//go:build !unit

package main

import (
	"math"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	stat := `cpu  100 5 50 1000 20 3 7 2 40 0
cpu0 50 2 25 500 10 1 3 1 20 0
cpu1 50 3 25 500 10 2 4 1 20 0
intr 12345
`
	got, err := parseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq+softirq+steal; guest is inside user.
	if got.Busy != 100+5+50+3+7+2 || got.Total != 100+5+50+1000+20+3+7+2 {
		t.Errorf("parseProcStat = %+v", got)
	}
	later := cpuTimes{Busy: got.Busy + 250, Total: got.Total + 400}
	if s := busySeconds(got, later); s != 2.5 {
		t.Errorf("busySeconds = %v, want 2.5", s)
	}
	if _, err := parseProcStat("intr 1\n"); err == nil {
		t.Error("no cpu line: no error")
	}
	if _, err := readCPU(); err != nil {
		t.Errorf("reading this machine's /proc/stat: %v", err)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got := cpuModel(info); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel("nothing"); got != "unknown" {
		t.Errorf("cpuModel without model name = %q", got)
	}
}

func TestParseProcessStat(t *testing.T) {
	line := "4242 (weft d) S 1 4242 4242 0 -1 4194560 1000 0 0 0 175 25 0 0 20 0 12 0 100 0 0\n"
	got, err := parseProcessStat(line)
	if err != nil || got != 200 {
		t.Fatalf("parseProcessStat = %d, %v; want 200 (175 user + 25 system)", got, err)
	}
	if _, err := parseProcessStat("12 (x) S 1 2"); err == nil {
		t.Fatal("short line accepted")
	}
	if p := cpuPercent(50, 10*time.Second); p != 5 {
		t.Fatalf("cpuPercent(50 ticks, 10 s) = %v, want 5", p)
	}
}

func TestPacedCPUPerGB(t *testing.T) {
	// 3 CPU s over 5 s with 0.2 CPU s of background per 5 s, 1.25 GB.
	got, err := pacedCPUPerGB(3, 5*time.Second, 0.2, 5*time.Second, 1.25e9)
	if err != nil || math.Abs(got-2.24) > 1e-9 {
		t.Fatalf("pacedCPUPerGB = %v, %v; want 2.24", got, err)
	}
	// A quiet window twice as long counts at its rate.
	got, err = pacedCPUPerGB(3, 5*time.Second, 0.4, 10*time.Second, 1.25e9)
	if err != nil || math.Abs(got-2.24) > 1e-9 {
		t.Fatalf("pacedCPUPerGB (longer quiet window) = %v, %v; want 2.24", got, err)
	}
	for _, c := range []struct {
		busy, quietBusy, bytes float64
		ran, quiet             time.Duration
	}{
		{3, 0.2, 0, 5 * time.Second, 5 * time.Second},     // nothing received
		{3, 0.2, 1e9, 0, 5 * time.Second},                 // no run
		{3, 0.2, 1e9, 5 * time.Second, 0},                 // no quiet window
		{0.5, 0.6, 1e9, 5 * time.Second, 5 * time.Second}, // busier before than during
	} {
		if got, err := pacedCPUPerGB(c.busy, c.ran, c.quietBusy, c.quiet, c.bytes); err == nil {
			t.Errorf("pacedCPUPerGB(%+v) = %v, want an error", c, got)
		}
	}
}
