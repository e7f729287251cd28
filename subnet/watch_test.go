//go:build !unit

package subnet_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// table mirrors what a watcher has delivered, the way weftd's peer table does.
type table struct {
	mu        sync.Mutex
	leases    map[netip.Prefix]subnet.Lease
	snapshots int
}

func (tb *table) handle(snapshot []subnet.Lease, events []subnet.Event) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if events == nil {
		tb.snapshots++
		tb.leases = map[netip.Prefix]subnet.Lease{}
		for _, l := range snapshot {
			tb.leases[l.Subnet] = l
		}
		return
	}
	for _, ev := range events {
		switch ev.Type {
		case subnet.EventAdded:
			tb.leases[ev.Lease.Subnet] = ev.Lease
		case subnet.EventRemoved:
			delete(tb.leases, ev.Lease.Subnet)
		}
	}
}

func (tb *table) has(s string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	_, ok := tb.leases[netip.MustParsePrefix(s)]
	return ok
}

func (tb *table) get(s string) (subnet.Lease, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	l, ok := tb.leases[netip.MustParsePrefix(s)]
	return l, ok
}

func (tb *table) size() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.leases)
}

func (tb *table) snapshotCount() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.snapshots
}

func startWatch(t *testing.T, m *subnet.Manager, own netip.Prefix) *table {
	t.Helper()
	tb := &table{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.WatchLeases(ctx, mustConfig(t, `{"Network":"10.244.0.0/16"}`), own, tb.handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchLeases returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("WatchLeases did not return after cancel")
		}
	})
	etcdtest.Eventually(t, 5*time.Second, "first snapshot", func() bool { return tb.snapshotCount() > 0 })
	return tb
}

func leaseValue(ip string, port string) string {
	return `{"PublicIP":"` + ip + `","BackendType":"udp","BackendData":{"Port":` + port + `}}`
}

func TestWatchSeesAddAndRemove(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{})
	own := netip.MustParsePrefix("10.244.1.0/24")
	etcdtest.Put(t, cli, m.LeaseKey(own), leaseValue("192.0.2.1", "8285"))
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.2.0/24")), leaseValue("192.0.2.2", "8285"))
	// Malformed entries are ignored, never fatal.
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.3.0/24")), `{not json`)
	etcdtest.Put(t, cli, "/weft/network/subnets/garbage", leaseValue("192.0.2.4", "8285"))

	tb := startWatch(t, m, own)
	if tb.size() != 1 || !tb.has("10.244.2.0/24") {
		t.Fatalf("snapshot %v, want only 10.244.2.0/24 (own and malformed excluded)", tb.leases)
	}

	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.9.0/24")), leaseValue("192.0.2.9", "9000"))
	etcdtest.Eventually(t, time.Second, "added lease seen", func() bool { return tb.has("10.244.9.0/24") })
	l, _ := tb.get("10.244.9.0/24")
	if ep, err := l.Endpoint(); err != nil || ep.String() != "192.0.2.9:9000" {
		t.Errorf("endpoint %v, %v", ep, err)
	}
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), m.LeaseKey(netip.MustParsePrefix("10.244.2.0/24"))); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, time.Second, "removed lease gone", func() bool { return !tb.has("10.244.2.0/24") })

	// Malformed updates and claims on our own subnet are ignored.
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.9.0/24")), `{"PublicIP":"nope"}`)
	etcdtest.Put(t, cli, m.LeaseKey(own), leaseValue("192.0.2.66", "8285"))
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.10.0/24")), leaseValue("192.0.2.10", "8285"))
	etcdtest.Eventually(t, time.Second, "later lease seen", func() bool { return tb.has("10.244.10.0/24") })
	if tb.has(own.String()) {
		t.Errorf("own subnet delivered")
	}
	if l, _ := tb.get("10.244.9.0/24"); l.Attrs.PublicIP != "192.0.2.9" {
		t.Errorf("malformed update replaced a good lease: %+v", l)
	}
	if tb.snapshotCount() != 1 {
		t.Errorf("%d snapshots, want 1 (events without rebuild)", tb.snapshotCount())
	}
}

func TestWatchSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{})
	tb := startWatch(t, m, netip.Prefix{})
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.2.0/24")), leaseValue("192.0.2.2", "8285"))
	etcdtest.Eventually(t, time.Second, "lease seen", func() bool { return tb.has("10.244.2.0/24") })

	srv.Stop()
	time.Sleep(500 * time.Millisecond)
	srv.Restart(t)
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.3.0/24")), leaseValue("192.0.2.3", "8285"))
	etcdtest.Eventually(t, 10*time.Second, "lease added after the restart seen", func() bool { return tb.has("10.244.3.0/24") })
	if !tb.has("10.244.2.0/24") {
		t.Errorf("lease from before the restart lost")
	}
}

func TestWatchRelistsAfterCompaction(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	direct := srv.Client(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoints()[0][len("http://"):])
	watcherCli := etcdtest.NewClient(t, subnet.ClientOptions{Endpoints: []string{proxy.Endpoint()}})
	m := newManager(t, direct, subnet.Options{})
	wm := newManager(t, watcherCli, subnet.Options{})
	etcdtest.Put(t, direct, m.LeaseKey(netip.MustParsePrefix("10.244.2.0/24")), leaseValue("192.0.2.2", "8285"))
	tb := startWatch(t, wm, netip.Prefix{})
	etcdtest.Eventually(t, time.Second, "snapshot has the lease", func() bool { return tb.has("10.244.2.0/24") })

	// Cut the watcher off; meanwhile leases change and history is compacted
	// past the watcher's revision.
	proxy.Block()
	for _, s := range []string{"10.244.3.0/24", "10.244.4.0/24"} {
		etcdtest.Put(t, direct, m.LeaseKey(netip.MustParsePrefix(s)), leaseValue("192.0.2.3", "8285"))
	}
	if _, err := direct.Delete(etcdtest.Context(t, 5*time.Second), m.LeaseKey(netip.MustParsePrefix("10.244.2.0/24"))); err != nil {
		t.Fatal(err)
	}
	etcdtest.Compact(t, direct)
	proxy.Unblock()

	etcdtest.Eventually(t, 15*time.Second, "changes made during the cut picked up", func() bool {
		return tb.has("10.244.3.0/24") && tb.has("10.244.4.0/24") && !tb.has("10.244.2.0/24")
	})
	if tb.snapshotCount() < 2 {
		t.Errorf("%d snapshots: the watcher should have listed again after compaction", tb.snapshotCount())
	}
}
