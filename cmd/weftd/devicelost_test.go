//go:build !unit

package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/nodestatus"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/workload"
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

// A node whose policy view never loaded (more data than the client takes
// in one message, before paging; etcd trouble) or whose rules cannot be
// installed is not ready: its new containers are refused (issue 25 item 3).
func TestNotReadyUntilPolicyInForce(t *testing.T) {
	d := newDaemon(&options{etcdGrace: time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := time.Now()
	d.state.lease.Store(&subnet.Lease{})
	d.state.dataRunning.Store(true)
	d.state.etcdOK.Store(now.UnixNano())
	fake := &fakeInstaller{}
	fake.fail.Store(true)
	pe := engine.New(engine.Options{Node: "192.0.2.1", Enforcer: fake, EnableBridgeFiltering: func() error { return nil }})
	d.state.policy.Store(pe)
	if r := d.readiness(now); r.Status != nodestatus.NotReady || !strings.Contains(r.Reason, "network policy not in force") {
		t.Fatalf("before any view: %+v", r)
	}
	if err := pe.ApplyView(workload.View{Revision: 3}); err == nil {
		t.Fatal("the failing installer applied")
	}
	if r := d.readiness(now); r.Status != nodestatus.NotReady {
		t.Fatalf("after a failed install: %+v", r)
	}
	fake.fail.Store(false)
	if err := pe.ApplyView(workload.View{Revision: 4}); err != nil {
		t.Fatal(err)
	}
	if r := d.readiness(now); r.Status != nodestatus.Ready {
		t.Fatalf("with rules in force: %+v", r)
	}
}
