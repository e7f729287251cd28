package guard

import "testing"

// The guard's counters never go back: not when its table vanished (reads
// 0), nor when a reinstalled table counts from 0 again.
func TestGuardCountsNeverGoBack(t *testing.T) {
	var g counts
	steps := []struct {
		reinstall bool
		kernel    uint64
		want      uint64
	}{
		{false, 5, 5},
		{false, 7, 7},
		{false, 0, 7}, // table flushed away: reads 0
		{true, 0, 7},  // put back, counting from 0
		{false, 3, 10},
		{true, 0, 10},
		{false, 1, 11},
	}
	for i, s := range steps {
		if s.reinstall {
			g.reinstalled()
		}
		got := g.total(map[string]uint64{"r": s.kernel})["r"]
		if got != s.want {
			t.Fatalf("step %d: total %d, want %d", i, got, s.want)
		}
	}
}
