//go:build !unit

package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed/cluster"
)

// An etcd that does not answer is reported within seconds, naming the
// endpoint and what a direct probe found, with or without credentials (the
// client authenticates while it is created); weftd keeps retrying.
func TestUnreachableEtcdWarnsAndRetries(t *testing.T) {
	for name, extra := range map[string][]string{
		"plain":            nil,
		"with credentials": {"--etcd-username", "weft", "--etcd-password", "secret"},
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			p := startLoneWeftd(t, append([]string{"--etcd-endpoints", unreachableEtcd}, extra...)...)
			start := time.Now()
			// The deadline is generous for a loaded machine; the design
			// bound is attemptTimeout (5 s) plus the probe (3 s).
			log := waitLog(t, p, 20*time.Second, "level=WARN", "endpoints="+unreachableEtcd)
			t.Logf("first WARN after %s", time.Since(start).Round(100*time.Millisecond))
			if !strings.Contains(log, "cause=") {
				t.Errorf("the WARN does not say why etcd did not answer:\n%s", log)
			}
			// Still retrying: a second WARN, and no exit.
			deadline := time.Now().Add(30 * time.Second)
			for strings.Count(log, "level=WARN") < 2 {
				if time.Now().After(deadline) || p.Exited() {
					t.Fatalf("weftd did not keep retrying (exited: %v):\n%s", p.Exited(), log)
				}
				time.Sleep(200 * time.Millisecond)
				log = waitLog(t, p, time.Second, "level=WARN")
			}
		})
	}
}

// weftctl status against a weftd that has no lease yet says so and exits
// non-zero (it printed an empty subnet "never" expiring and exited 0).
func TestStatusBeforeLease(t *testing.T) {
	p, host := startLoneWeftdOn(t, "--etcd-endpoints", unreachableEtcd, "--healthz-port", "8286")
	waitLog(t, p, 30*time.Second, "serving health and metrics")
	ctx := ctxFor(t, 30*time.Second)
	out, err := host.NS.Run(ctx, filepath.Join(binDir, "weftctl"), "status", "--daemon-url", "http://127.0.0.1:8286")
	if err == nil || !strings.Contains(out, "no lease yet") || strings.Contains(out, "never (reservation)") {
		t.Fatalf("weftctl status before the lease: err %v, output:\n%s", err, out)
	}
}

// Stopping the node that runs the embedded etcd while another node watches
// it: etcd's graceful stop waited its 7 s request timeout for the other
// node's watch streams; weft ends them at once, and the stop logs no
// error-level lines (etcd logged its closed listeners as four errors).
func TestEmbeddedEtcdNodeStopsPromptly(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	first := c.Nodes[0]
	start := time.Now()
	if err := first.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("the embedded etcd's node stopped in %s", took.Round(time.Millisecond))
	// Far above the normal tens of milliseconds, below etcd's 7 s wait.
	if took > 5*time.Second {
		t.Errorf("stopping the node with the embedded etcd took %s with a peer connected", took)
	}
	log := first.Log(400)
	if strings.Contains(log, "level=ERROR") || strings.Contains(log, `"level":"error"`) || strings.Contains(log, "stacktrace") {
		t.Errorf("a clean stop logged errors:\n%s", log)
	}
}
