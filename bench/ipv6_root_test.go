//go:build !unit

package main

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
)

// Raw veth and kernel VXLAN carry TCP over IPv6 between their IPv6
// endpoints (the run checks the connected addresses and the MSS against
// the route's MTU), and a path whose IPv6 endpoint is not there fails
// loudly, in the reachability check before measuring and in the
// workload: never an empty cell in silence. (The weft paths need
// bin/weftd: `go run ./bench -only tcp6-1` runs the same checks on them.)
func TestTCP6OverRawAndVXLAN(t *testing.T) {
	bed := testbed.ForTestWith(t, "b6", 2, testbed.Options{IPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw := rawPath(bed)
	vx, err := vxlanPath(ctx, bed)
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{bed: bed, seconds: 1, logDir: t.TempDir(), res: newResults([]string{pathRaw, pathVXLAN, "gone"}),
		servers: map[*testbed.Bed]*testbed.Proc{}}
	if err := r.startServer(bed); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*path{raw, vx} {
		if !p.A6.Is6() || !p.B6.Is6() {
			t.Fatalf("path %s: IPv6 endpoints %v <-> %v", p.Name, p.A6, p.B6)
		}
		if err := waitReachable(ctx, bed, p); err != nil {
			t.Fatal(err)
		}
		if err := r.runTCP6(ctx, p); err != nil {
			t.Fatalf("tcp6-1 over %s: %v", p.Name, err)
		}
		if got := r.res.samples[p.Name][mTCP6]; len(got) != 1 || got[0] <= 0 {
			t.Errorf("tcp6-1 over %s: samples %v", p.Name, got)
		}
	}
	gone := &path{Name: "gone", A: raw.A, B: raw.B, A6: raw.A6, B6: netip.MustParseAddr("2001:db8::99")}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	err = waitReachable(wctx, bed, gone)
	wcancel()
	if err == nil || !strings.Contains(err.Error(), "2001:db8::99 unreachable") {
		t.Errorf("waitReachable to an IPv6 address nobody has: %v", err)
	}
	if err := r.runTCP6(ctx, gone); err == nil {
		t.Errorf("tcp6-1 to an IPv6 address nobody has: no error")
	}
	if n := len(r.res.samples["gone"][mTCP6]); n != 0 {
		t.Errorf("%d samples recorded for the unreachable path", n)
	}
}
