//go:build !unit

package main

import (
	"context"
	"strings"
	"testing"
)

// A path slower than the pacing rate (wireguard-go, flannel udp) has no
// paced cost: runTCPPaced records why and returns before running
// anything, and the verdict does not count the empty cell as a failure.
func TestPacedSkipsPathsSlowerThanThePacingRate(t *testing.T) {
	res := newResults([]string{pathWireGuardGo})
	res.add(pathWireGuardGo, mTCP1, 1.61)
	res.add(pathWireGuardGo, mTCP1, 1.93)
	r := &runner{res: res}
	if err := r.runTCPPaced(context.Background(), &path{Name: pathWireGuardGo}); err != nil {
		t.Fatalf("runTCPPaced on a 1.9 Gbit/s path: %v", err)
	}
	why := res.NotMeasured[pathWireGuardGo+"/"+mCPUPaced]
	if !strings.Contains(why, "1.93 Gbit/s") || !strings.Contains(why, "2 Gbit/s") {
		t.Fatalf("reason %q", why)
	}
	rep := &report{Results: res}
	if err := rep.verdict(); err != nil && strings.Contains(err.Error(), mCPUPaced) {
		t.Fatalf("verdict counts the paced cell: %v", err)
	}
	if md := rep.markdown("x.png"); !strings.Contains(md, "Not measured by design") {
		t.Errorf("report does not say why the cell is empty")
	}
}
