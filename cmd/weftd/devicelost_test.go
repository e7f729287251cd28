package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftnet/weft/nodestatus"
	"github.com/weftnet/weft/subnet"
)

// A node whose TUN went away says not-ready at once, even while the data
// path goroutine has not noticed yet (issue 11, item 2).
func TestReadinessAfterDeviceLost(t *testing.T) {
	d := newDaemon(&options{etcdGrace: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Now()
	d.state.lease.Store(&subnet.Lease{})
	d.state.dataRunning.Store(true)
	d.state.etcdOK.Store(now.UnixNano())
	if r := d.readiness(now); r.Status != nodestatus.Ready {
		t.Fatalf("before: %+v", r)
	}
	d.state.deviceLost.Store(true)
	r := d.readiness(now)
	if r.Status != nodestatus.NotReady || r.DataPath || r.Reason != "TUN device removed or down" {
		t.Fatalf("after the TUN went away: %+v", r)
	}
}
