//go:build !unit

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/cpusched"
	"github.com/weftnet/weft/testbed/cluster"
)

// Every thread of a started weftd carries the scheduler setting
// (--sched-slice, --nice; issue 22), including the threads the Go runtime
// and the data path start after weftd applied it at start-up (its debug
// line says how many threads it set; more run after traffic has flowed).
func TestWeftdThreadsCarryTheSchedSetting(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{ExtraArgs: []string{"--sched-slice", "200us", "--nice", "-10", "--log-level", "debug"}})
	ctx := ctxFor(t, time.Minute)
	a, b := c.Nodes[0], c.Nodes[1]
	runIn(t, ctx, a.Host.NS, "ping", "-c", "5", "-i", "0.2", "-W", "2", tunAddr(t, b).String())
	for _, n := range c.Nodes {
		threads := weftdThreads(t, n.Pid())
		for tid, s := range threads {
			if s.slice != 200*time.Microsecond || s.nice != -10 {
				t.Errorf("node %d weftd thread %d: slice %v nice %d, want 200µs and -10", n.Index+1, tid, s.slice, s.nice)
			}
		}
		log, err := os.ReadFile(n.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`scheduler setting applied.*threads=(\d+)`).FindSubmatch(log)
		if m == nil {
			t.Fatalf("node %d: no debug line for the scheduler setting:\n%s", n.Index+1, n.Log(50))
		}
		atStart, _ := strconv.Atoi(string(m[1]))
		t.Logf("node %d: %d weftd threads set at start, %d now, all carry the setting", n.Index+1, atStart, len(threads))
		if len(threads) <= atStart {
			t.Errorf("node %d: no thread started after the setting (%d at start, %d now): the test shows no inheritance", n.Index+1, atStart, len(threads))
		}
	}
	if log := a.Log(200); strings.Contains(log, "scheduler setting not applied") || strings.Contains(log, "nice value not lowered") {
		t.Errorf("weftd as root warned about its scheduler setting:\n%s", log)
	}
}

// A weftd with the defaults (--nice 0 --sched-slice 0) keeps the kernel's.
func TestWeftdSchedSettingOff(t *testing.T) {
	p := startLoneWeftd(t, "--etcd-endpoints", unreachableEtcd)
	waitLog(t, p, 30*time.Second, "level=WARN") // running, retrying etcd
	own, _, err := cpusched.Get(os.Getpid())    // this test's process: the kernel's default slice
	if err != nil {
		t.Fatal(err)
	}
	for tid, s := range weftdThreads(t, p.Pid) {
		if s.slice != own || s.nice != 0 {
			t.Errorf("weftd thread %d with the setting off: slice %v nice %d, want the kernel's %v and 0", tid, s.slice, s.nice, own)
		}
	}
}

type threadSched struct {
	slice time.Duration
	nice  int
}

// weftdThreads reads the slice and nice value of each thread of pid,
// checking that pid is a weftd.
func weftdThreads(t *testing.T, pid int) map[int]threadSched {
	t.Helper()
	if pid == 0 {
		t.Fatal("weftd not running")
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "weftd" {
		t.Fatalf("pid %d is %q (%v), not weftd", pid, comm, err)
	}
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	out := map[int]threadSched{}
	for _, d := range dirs {
		tid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			t.Fatal(err)
		}
		slice, nice, err := cpusched.Get(tid)
		if err != nil {
			t.Errorf("thread %d: %v", tid, err)
			continue
		}
		out[tid] = threadSched{slice, nice}
	}
	return out
}
