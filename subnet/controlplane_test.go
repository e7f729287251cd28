//go:build !unit

package subnet_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/logtest"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// The control plane takes etcd content as input, not truth: these tests
// write what a stray etcd writer could and check that weft neither
// renumbers, nor loses its node, nor routes to a wrong address, nor floods
// its log.

var net16 = `{"Network":"10.244.0.0/16"}`

// Item 4: CheckPrevious refuses every case in which taking a subnet other
// than the previous one would renumber the host, including a malformed
// value on the previous key and a network config that changed.
func TestCheckPreviousRefusesToRenumber(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	ctx := etcdtest.Context(t, 30*time.Second)
	prev := netip.MustParsePrefix("10.244.7.0/24")
	key := m.LeaseKey(prev)
	ours := attrs(1)

	if err := m.CheckPrevious(ctx, cfg, prev, ours); err != nil {
		t.Fatalf("free previous subnet: %v", err)
	}
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.1", "8285"))
	if err := m.CheckPrevious(ctx, cfg, prev, ours); err != nil {
		t.Fatalf("previous subnet held by this node: %v", err)
	}
	for _, tc := range []struct{ name, value, want string }{
		{"another node", leaseValue("192.0.2.2", "8285"), "node 192.0.2.2 holds"},
		{"bad JSON", `{"PublicIP":"192.0.2.1",`, "no usable lease"},
		{"null", `null`, "no usable lease"},
		{"loopback PublicIP", leaseValue("127.0.0.1", "8285"), "no usable lease"},
		{"oversized", `{"PublicIP":"192.0.2.1","X":"` + strings.Repeat("x", 8000) + `"}`, "no usable lease"},
	} {
		etcdtest.Put(t, cli, key, tc.value)
		err := m.CheckPrevious(ctx, cfg, prev, ours)
		if !errors.Is(err, subnet.ErrWouldRenumber) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckPrevious = %v, want ErrWouldRenumber saying %q", tc.name, err, tc.want)
		}
		if err != nil && len(err.Error()) > 600 {
			t.Errorf("%s: error of %d bytes: the value must be cut", tc.name, len(err.Error()))
		}
	}
	// This node's PublicIP holds another subnet too (a reservation someone
	// wrote, or an older lease): AcquireLease would reuse that one.
	// (With previous holding our lease with a TTL, the reservation wins.)
	other := m.LeaseKey(netip.MustParsePrefix("10.244.9.0/24"))
	grant, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	for _, prevValue := range []string{"", leaseValue("192.0.2.1", "8285")} {
		if prevValue == "" {
			if _, err := cli.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		} else {
			etcdtest.Put(t, cli, key, prevValue, clientv3.WithLease(grant.ID))
		}
		etcdtest.Put(t, cli, other, leaseValue("192.0.2.1", "8285"))
		err := m.CheckPrevious(ctx, cfg, prev, ours)
		if !errors.Is(err, subnet.ErrWouldRenumber) || !strings.Contains(err.Error(), "10.244.9.0/24") {
			t.Errorf("own reservation elsewhere (previous key %q): CheckPrevious = %v, want ErrWouldRenumber naming 10.244.9.0/24", prevValue, err)
		}
		if _, err := cli.Delete(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	// An older lease with a TTL elsewhere while previous holds ours: previous wins.
	etcdtest.Put(t, cli, other, leaseValue("192.0.2.1", "8285"), clientv3.WithLease(grant.ID))
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.1", "8285"), clientv3.WithLease(grant.ID))
	if err := m.CheckPrevious(ctx, cfg, prev, ours); err != nil {
		t.Errorf("previous and an older lease both ours: CheckPrevious = %v, want nil (previous is reused)", err)
	}
	if _, err := cli.Delete(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{
		`{"Network":"10.245.0.0/16"}`,                          // another network
		`{"Network":"10.244.0.0/16","SubnetLen":25}`,           // another subnet length
		`{"Network":"10.244.0.0/16","SubnetMin":"10.244.8.0"}`, // out of the pool
	} {
		err := m.CheckPrevious(ctx, mustConfig(t, c), prev, ours)
		if !errors.Is(err, subnet.ErrWouldRenumber) || !strings.Contains(err.Error(), "network config changed") {
			t.Errorf("config %s: CheckPrevious = %v, want ErrWouldRenumber (config changed)", c, err)
		}
	}
}

// Item 5: the same PublicIP with another port (or junk) on this node's key
// is put back, in place, by the keeper; KeepLease goes on.
func TestKeepLeaseRestoresChangedValue(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	key := m.LeaseKey(l.Subnet)
	ours := string(etcdtest.Get(t, cli, key).Kvs[0].Value)
	leaseID := clientv3.LeaseID(etcdtest.Get(t, cli, key).Kvs[0].Lease)
	writerLease, err := cli.Grant(etcdtest.Context(t, 5*time.Second), 3600*24*365)
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)
	for _, tc := range []struct {
		name, value string
		opts        []clientv3.OpOption
	}{
		{"port changed, same etcd lease", leaseValue("192.0.2.1", "9999"), []clientv3.OpOption{clientv3.WithLease(leaseID)}},
		{"port changed on the writer's own etcd lease", leaseValue("192.0.2.1", "9998"), []clientv3.OpOption{clientv3.WithLease(writerLease.ID)}},
		{"port changed without a lease", leaseValue("192.0.2.1", "1"), nil},
		{"junk", `{"PublicIP":`, nil},
		{"another backend", `{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"Port":8285}}`, nil},
	} {
		etcdtest.Put(t, cli, key, tc.value, tc.opts...)
		etcdtest.Eventually(t, 10*time.Second, tc.name+": our value restored on our etcd lease", func() bool {
			kv := etcdtest.Get(t, cli, key).Kvs
			return len(kv) == 1 && string(kv[0].Value) == ours && clientv3.LeaseID(kv[0].Lease) == leaseID
		})
		select {
		case err := <-r.done:
			t.Fatalf("%s: KeepLease returned %v", tc.name, err)
		default:
		}
	}
}

// Item 5: a writer that keeps changing our key does not make the keeper
// write at etcd's pace: restores back off (100 ms doubling to 5 s).
func TestKeepLeaseRestoreBacksOff(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	logs := &logtest.Counter{}
	m := newManager(t, cli, subnet.Options{TTL: time.Hour, Logger: slog.New(logs)})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	key := m.LeaseKey(l.Subnet)
	startKeep(t, m, cfg, l)
	ctx := etcdtest.Context(t, 30*time.Second)
	writes := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); writes++ {
		if _, err := cli.Put(ctx, key, leaseValue("192.0.2.1", fmt.Sprint(1000+writes%1000))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	restores := logs.Containing("put ours back")
	t.Logf("%d conflicting writes in 3 s, %d restores", writes, restores)
	if restores == 0 || restores > 12 {
		t.Errorf("%d restores against %d writes in 3 s, want 1..12 (backoff 0.1 s doubling)", restores, writes)
	}
}

// Item 9: a change made after the keeper read its key and before its
// watch opens is seen at once, not at the next renewal (an hour away here).
func TestKeepLeaseSeesChangeBetweenReadAndWatch(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	key := m.LeaseKey(l.Subnet)
	read := make(chan struct{})
	var readOnce, watchOnce sync.Once
	var deleted atomic.Int64
	afterRead := func() { readOnce.Do(func() { close(read) }) }
	beforeWatch := func() {
		watchOnce.Do(func() {
			<-read
			resp, err := cli.Delete(context.Background(), key)
			if err != nil {
				t.Errorf("delete between read and watch: %v", err)
				return
			}
			deleted.Store(resp.Header.Revision)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.KeepLeaseWithHooks(ctx, cfg, l, nil, afterRead, beforeWatch) }()
	t.Cleanup(func() { cancel(); <-done })
	etcdtest.Eventually(t, 5*time.Second, "key deleted between the read and the watch re-taken", func() bool {
		kv := etcdtest.Get(t, cli, key).Kvs
		return deleted.Load() != 0 && len(kv) == 1 && kv[0].CreateRevision > deleted.Load()
	})
}

// Item 6: only unicast PublicIPs make peers; AcquireLease refuses the rest
// for this node.
func TestLeasePublicIPMustBeUnicast(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m := newManager(t, cli, subnet.Options{})
	bad := []string{"127.0.0.1", "127.1.2.3", "0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "239.1.1.1", "169.254.1.1", "240.0.0.1"}
	good := []string{"192.0.2.5", "10.1.2.3", "172.16.0.9", "8.8.8.8"}
	subnetOf := func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(100 + i), 0}), 24)
	}
	for i, ip := range bad {
		etcdtest.Put(t, cli, m.LeaseKey(subnetOf(i)), leaseValue(ip, "8285"))
	}
	for i, ip := range good {
		etcdtest.Put(t, cli, m.LeaseKey(subnetOf(50+i)), leaseValue(ip, "8285"))
	}
	tb := startWatch(t, m, netip.Prefix{})
	if tb.size() != len(good) {
		t.Errorf("snapshot has %d leases %v, want the %d unicast ones", tb.size(), tb.leases, len(good))
	}
	// The same through the watch.
	for i, ip := range bad {
		etcdtest.Put(t, cli, m.LeaseKey(subnetOf(20+i)), leaseValue(ip, "8285"))
	}
	etcdtest.Put(t, cli, m.LeaseKey(subnetOf(90)), leaseValue("192.0.2.90", "8285"))
	etcdtest.Eventually(t, 5*time.Second, "lease after the bad ones seen", func() bool { return tb.has(subnetOf(90).String()) })
	if tb.size() != len(good)+1 {
		t.Errorf("table has %d leases %v after the watch, want %d", tb.size(), tb.leases, len(good)+1)
	}
	for _, ip := range bad {
		_, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, subnet.NewLeaseAttrs(netip.MustParseAddr(ip), 8285), netip.Prefix{})
		if err == nil || !strings.Contains(err.Error(), "PublicIP") {
			t.Errorf("AcquireLease with PublicIP %s = %v, want a PublicIP error", ip, err)
		}
	}
}

// Item 7: keys that hold junk and no TTL do not exhaust the pool for good:
// when no subnet is free, one of them is taken over. Junk with a TTL (it
// goes away by itself) and valid reservations are left alone.
func TestJunkWithoutTTLDoesNotExhaustPool(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.10.0","SubnetMax":"10.244.12.0"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	ctx := etcdtest.Context(t, 30*time.Second)
	pool := []netip.Prefix{netip.MustParsePrefix("10.244.10.0/24"), netip.MustParsePrefix("10.244.11.0/24"), netip.MustParsePrefix("10.244.12.0/24")}

	// A pool of valid reservations and junk with a TTL: exhausted.
	grant, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, m.LeaseKey(pool[0]), leaseValue("192.0.2.50", "8285"))
	etcdtest.Put(t, cli, m.LeaseKey(pool[1]), `junk`, clientv3.WithLease(grant.ID))
	etcdtest.Put(t, cli, m.LeaseKey(pool[2]), `{"PublicIP":"127.0.0.1"}`, clientv3.WithLease(grant.ID))
	if _, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{}); !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Fatalf("AcquireLease on reservations and junk with a TTL = %v, want ErrPoolExhausted", err)
	}
	// Junk without a TTL on the last two: they are taken, one each.
	etcdtest.Put(t, cli, m.LeaseKey(pool[1]), `junk`)
	etcdtest.Put(t, cli, m.LeaseKey(pool[2]), strings.Repeat("x", 5000))
	got := map[netip.Prefix]bool{}
	for i := 1; i <= 2; i++ {
		l, err := m.AcquireLease(ctx, cfg, attrs(i), netip.Prefix{})
		if err != nil {
			t.Fatalf("node %d: AcquireLease with junk without TTL in the pool: %v", i, err)
		}
		if l.Subnet == pool[0] || got[l.Subnet] {
			t.Fatalf("node %d got %s (reservation or duplicate)", i, l.Subnet)
		}
		got[l.Subnet] = true
		kv := etcdtest.Get(t, cli, m.LeaseKey(l.Subnet)).Kvs[0]
		if kv.Lease == 0 || !strings.Contains(string(kv.Value), fmt.Sprintf("192.0.2.%d", i)) {
			t.Errorf("node %d: key of %s = %s (lease %d), want its lease with a TTL", i, l.Subnet, kv.Value, kv.Lease)
		}
	}
	if v := string(etcdtest.Get(t, cli, m.LeaseKey(pool[0])).Kvs[0].Value); v != leaseValue("192.0.2.50", "8285") {
		t.Errorf("the reservation was touched: %s", v)
	}
	if _, err := m.AcquireLease(ctx, cfg, attrs(3), netip.Prefix{}); !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Errorf("fourth node: %v, want ErrPoolExhausted", err)
	}
}

// Item 7: thousands of junk keys give one log line per listing and a
// handful per burst of watch events, never one per key; values are cut in
// the log; MalformedLeases counts the junk.
func TestMalformedLeasesLoggedInSummary(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	logs := &logtest.Counter{}
	m := newManager(t, cli, subnet.Options{Logger: slog.New(logs)})
	ctx := etcdtest.Context(t, 2*time.Minute)
	big := `{"PublicIP":"192.0.2.1","X":"` + strings.Repeat("A", 1<<20) + `"}`
	junk := func(i int) (string, string) {
		p := m.LeaseKey(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 256), 0}), 24))
		switch i % 5 {
		case 0:
			return p[:len(p)-3] + fmt.Sprintf("-junk-%d", i), leaseValue("192.0.2.9", "8285")
		case 1:
			return fmt.Sprintf("/weft/network/subnets/10.99.%d.%d-32", i/256, i%256), leaseValue("192.0.2.9", "8285") // outside the network
		case 2:
			return fmt.Sprintf("/weft/network/subnets/garbage-%d", i), `{not json`
		case 3:
			return fmt.Sprintf("/weft/network/subnets/10.244.%d.%d-30", i/64, (i%64)*4), `{"PublicIP":"224.0.0.1","BackendType":"udp","BackendData":{"Port":8285}}`
		}
		return fmt.Sprintf("/weft/network/subnets/10.244.%d.%d-30", i/64, (i%64)*4), `null`
	}
	fill := func(from, to int) {
		var ops []clientv3.Op
		for i := from; i < to; i++ {
			k, v := junk(i)
			ops = append(ops, clientv3.OpPut(k, v))
			if len(ops) == 100 || i == to-1 {
				if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					t.Fatal(err)
				}
				ops = ops[:0]
			}
		}
	}
	fill(0, 2000)
	etcdtest.Put(t, cli, "/weft/network/subnets/10.244.250.0-24", big)
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.251.0/24")), leaseValue("192.0.2.2", "8285"))
	// Each key under its own revision too, as a careless script would.
	tb := startWatch(t, m, netip.Prefix{})
	if tb.size() != 1 {
		t.Errorf("snapshot %v, want the one good lease", tb.leases)
	}
	if n := m.MalformedLeases(); n != 2001 {
		t.Errorf("MalformedLeases = %d after the listing, want 2001", n)
	}
	if n := len(logs.Lines()); n > 2 {
		t.Errorf("listing 2,001 junk keys logged %d lines, want 1 summary", n)
	}
	for i := 2000; i < 3000; i++ {
		k, v := junk(i)
		etcdtest.Put(t, cli, k, v)
	}
	etcdtest.Put(t, cli, "/weft/network/subnets/10.244.252.0-24", big)
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.253.0/24")), leaseValue("192.0.2.3", "8285"))
	etcdtest.Eventually(t, 10*time.Second, "lease after the junk seen", func() bool { return tb.has("10.244.253.0/24") })
	if n := m.MalformedLeases(); n != 3002 {
		t.Errorf("MalformedLeases = %d after the watch, want 3002", n)
	}
	// Deleting junk lowers the gauge.
	if _, err := cli.Delete(ctx, "/weft/network/subnets/garbage-", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "gauge after deleting 600 junk keys", func() bool { return m.MalformedLeases() == 2402 })
	lines := logs.Lines()
	t.Logf("%d log lines for 3,002 junk keys and 600 deletions; first: %.300s", len(lines), lines[0])
	if len(lines) > 5 {
		t.Errorf("%d log lines, want at most 5:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if len(l) > 2048 {
			t.Errorf("a log line of %d bytes: values must be cut", len(l))
		}
	}
}

// Item 7: listings are paged below the client's receive limit, so 24 MB of
// 1 MB values under the prefix neither break nor balloon a listing.
func TestListingPagesLargeValues(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{Logger: quietLogger()})
	cfg := mustConfig(t, net16)
	ctx := etcdtest.Context(t, time.Minute)
	big := strings.Repeat("B", 1<<20)
	for i := range 24 {
		etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/subnets/10.244.%d.0-24", 100+i), big)
	}
	for i := range 300 {
		etcdtest.Put(t, cli, m.LeaseKey(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i / 2), byte(i % 2 * 128)}), 25)), leaseValue("192.0.2.9", "8285"))
	}
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.200.0/24")), leaseValue("192.0.2.2", "8285"))
	if resp, err := cli.Get(ctx, "/weft/network/subnets/", clientv3.WithPrefix()); err == nil {
		t.Fatalf("an unpaged listing of %d keys fit the receive limit; the test proves nothing", len(resp.Kvs))
	}
	tb := startWatch(t, m, netip.Prefix{})
	if tb.size() != 1 || !tb.has("10.244.200.0/24") {
		t.Errorf("snapshot has %d leases, want the one good /24", tb.size())
	}
	if n := m.MalformedLeases(); n != 324 {
		t.Errorf("MalformedLeases = %d, want 324", n)
	}
	if _, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{}); err != nil {
		t.Errorf("AcquireLease: %v", err)
	}
	// Large values arriving on the watch, several per revision.
	ops := []clientv3.Op{}
	for i := range 8 {
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("/weft/network/subnets/10.244.%d.0-24", 150+i), big[:1<<17]))
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.201.0/24")), leaseValue("192.0.2.3", "8285"))
	etcdtest.Eventually(t, 10*time.Second, "lease after the large values seen", func() bool { return tb.has("10.244.201.0/24") })
}

// Item 8: a peer whose endpoint changes without a deletion in between is
// logged at WARN (a hijack looks like this); a delete and a new lease is not.
func TestWatchWarnsOnEndpointChange(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	logs := &logtest.Counter{}
	m := newManager(t, cli, subnet.Options{Logger: slog.New(logs)})
	peer := netip.MustParsePrefix("10.244.2.0/24")
	key := m.LeaseKey(peer)
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.2", "8285"))
	tb := startWatch(t, m, netip.Prefix{})
	const hijack = "endpoint changed without its lease being deleted"

	etcdtest.Put(t, cli, key, leaseValue("192.0.2.66", "8285"))
	etcdtest.Eventually(t, 5*time.Second, "new endpoint delivered", func() bool {
		l, _ := tb.get(peer.String())
		return l.Attrs.PublicIP == "192.0.2.66"
	})
	if n := logs.Containing(hijack); n != 1 {
		t.Fatalf("%d WARN lines about the changed endpoint, want 1: %q", n, logs.Lines())
	}
	if l := logs.Lines(); !strings.Contains(l[len(l)-1], "192.0.2.2:8285") || !strings.Contains(l[len(l)-1], "192.0.2.66:8285") {
		t.Errorf("the WARN line does not name both endpoints: %s", l[len(l)-1])
	}
	// A port change is a change too.
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.66", "9000"))
	etcdtest.Eventually(t, 5*time.Second, "port change WARN", func() bool { return logs.Containing(hijack) == 2 })
	// Deleted, then taken by another node: ordinary.
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), key); err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.3", "8285"))
	etcdtest.Eventually(t, 5*time.Second, "re-leased subnet delivered", func() bool {
		l, _ := tb.get(peer.String())
		return l.Attrs.PublicIP == "192.0.2.3"
	})
	// The same value written again: no change.
	etcdtest.Put(t, cli, key, leaseValue("192.0.2.3", "8285"))
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.9.0/24")), leaseValue("192.0.2.9", "8285"))
	etcdtest.Eventually(t, 5*time.Second, "later lease", func() bool { return tb.has("10.244.9.0/24") })
	if n := logs.Containing(hijack); n != 2 {
		t.Errorf("%d WARN lines, want 2 (delete-then-put and a rewrite are not hijacks): %q", n, logs.Lines())
	}
	// A writer flipping an endpoint 200 times: at most 10 lines one by one
	// in 30 s, not 200.
	for i := range 200 {
		etcdtest.Put(t, cli, key, leaseValue("192.0.2.3", fmt.Sprint(1000+i)))
	}
	etcdtest.Eventually(t, 10*time.Second, "last flip delivered", func() bool {
		l, _ := tb.get(peer.String())
		ep, _ := l.Endpoint()
		return ep.Port() == 1199
	})
	// 10 per 30 s window, the 2 above included (a slow run may open a
	// second window).
	if n := logs.Containing(hijack); n < 10 || n > 20 {
		t.Errorf("%d WARN lines for 200 endpoint flips, want about 10 (then counted)", n)
	}
}

// Item 8: weft works with an etcd user whose role covers only its prefix.
func TestPrefixOnlyEtcdRole(t *testing.T) {
	srv := etcdtest.Start(t)
	etcdtest.EnableAuth(t, srv.Client(t), subnet.DefaultPrefix+"/", "weft-node", "node-secret")
	opts := subnet.ClientOptions{Endpoints: srv.Endpoints(), Username: "weft-node", Password: "node-secret"}
	ctx := etcdtest.Context(t, time.Minute)
	cli, err := subnet.Connect(ctx, opts)
	if err != nil {
		t.Fatalf("Connect with a prefix-only role: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.Put(ctx, "/elsewhere", "x"); err == nil {
		t.Fatal("the role is not limited to the prefix: a write outside it worked")
	}
	m := newManager(t, cli, subnet.Options{TTL: 2 * time.Second})
	if err := m.RoundTrip(ctx); err != nil {
		t.Fatalf("RoundTrip (weftd's etcd probe): %v", err)
	}
	cfg := mustConfig(t, net16)
	if _, err := m.EnsureConfig(ctx, cfg); err != nil {
		t.Fatalf("EnsureConfig: %v", err)
	}
	if _, err := m.GetConfig(ctx); err != nil {
		t.Fatalf("GetConfig: %v", err)
	}
	l, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	if err := m.CheckPrevious(ctx, cfg, l.Subnet, attrs(1)); err != nil {
		t.Fatalf("CheckPrevious: %v", err)
	}
	r := startKeep(t, m, cfg, l)
	other := newManager(t, cli, subnet.Options{TTL: time.Hour})
	if _, err := other.AcquireLease(ctx, cfg, attrs(2), netip.Prefix{}); err != nil {
		t.Fatalf("second node: %v", err)
	}
	tb := startWatch(t, m, l.Subnet)
	if tb.size() != 1 {
		t.Errorf("watch with the prefix-only role: %d peers, want 1", tb.size())
	}
	time.Sleep(3 * time.Second) // more than one TTL: renewals must have worked
	if len(r.renewals()) < 2 {
		t.Errorf("%d renewals with the prefix-only role in 3 s (TTL 2 s)", len(r.renewals()))
	}
	if _, err := m.ListLeases(ctx); err != nil {
		t.Errorf("ListLeases: %v", err)
	}
}

// A host-gw lease has no port: the keeper must take it as its own, not
// "restore" it over and over.
func TestKeepLeaseHostGWIsNotRestored(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`)
	logs := &logtest.Counter{}
	m := newManager(t, cli, subnet.Options{TTL: 3 * time.Second, Logger: slog.New(logs)})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, subnet.LeaseAttrsFor(cfg.Backend, netip.MustParseAddr("192.0.2.1")), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)
	etcdtest.Eventually(t, 10*time.Second, "two renewals", func() bool { return len(r.renewals()) >= 2 })
	if n := logs.Containing("put ours back"); n != 0 {
		t.Errorf("the keeper restored its own host-gw lease %d times: %q", n, logs.Lines())
	}
}

// Item 5: junk without a TTL on the key before the keeper first reads it
// (it knows no etcd lease of its own yet): ours goes back on a fresh etcd
// lease, not as a reservation that would never expire.
func TestKeepLeaseRestoresJunkBeforeFirstRead(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, net16)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	key := m.LeaseKey(l.Subnet)
	ours := string(etcdtest.Get(t, cli, key).Kvs[0].Value)
	etcdtest.Put(t, cli, key, `{"PublicIP":"192.0.2.1"`)
	r := startKeep(t, m, cfg, l)
	etcdtest.Eventually(t, 10*time.Second, "our value back with a TTL", func() bool {
		kv := etcdtest.Get(t, cli, key).Kvs
		return len(kv) == 1 && string(kv[0].Value) == ours && kv[0].Lease != 0
	})
	etcdtest.Eventually(t, 5*time.Second, "a renewal reported", func() bool {
		rs := r.renewals()
		return len(rs) > 0 && !rs[len(rs)-1].Reservation && !rs[len(rs)-1].Expiration.IsZero()
	})
}

// Item 7: on an etcd whose --max-request-bytes is above the client's
// receive cap, a single value larger than the cap is counted as junk
// (read keys-only) instead of failing every listing for good.
func TestListingSkipsValueOverReceiveCap(t *testing.T) {
	srv := etcdtest.StartWith(t, func(o *embedded.Options) { o.MaxRequestBytes = 24 << 20 })
	writer, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, MaxCallSendMsgSize: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	ctx := etcdtest.Context(t, time.Minute)
	huge := strings.Repeat("H", subnet.MaxRecvMsgSize+(1<<20))
	if _, err := writer.Put(ctx, "/weft/network/subnets/10.244.100.0-24", huge); err != nil {
		t.Fatal(err)
	}
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{Logger: quietLogger()})
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.7.0/24")), leaseValue("192.0.2.7", "8285"))
	etcdtest.Put(t, cli, m.LeaseKey(netip.MustParsePrefix("10.244.200.0/24")), leaseValue("192.0.2.8", "8285"))
	if _, err := cli.Get(ctx, "/weft/network/subnets/10.244.100.0-24"); err == nil {
		t.Fatal("the huge value fit the receive cap; the test proves nothing")
	}
	tb := startWatch(t, m, netip.Prefix{})
	if tb.size() != 2 || !tb.has("10.244.7.0/24") || !tb.has("10.244.200.0/24") {
		t.Errorf("snapshot %v, want the two leases around the huge value", tb.leases)
	}
	if n := m.MalformedLeases(); n != 1 {
		t.Errorf("MalformedLeases = %d, want 1 (the huge value)", n)
	}
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.100.0","SubnetMax":"10.244.100.0"}`)
	l, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatalf("AcquireLease with the huge TTL-less junk as the only subnet: %v (it should be taken over)", err)
	}
	// The same on this node's own key: the keeper reads it keys-only and
	// puts its value back; CheckPrevious refuses it as junk.
	key := m.LeaseKey(l.Subnet)
	ours := string(etcdtest.Get(t, cli, key).Kvs[0].Value)
	startKeep(t, m, cfg, l)
	if _, err := writer.Put(ctx, key, huge); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "huge value on our key replaced by ours", func() bool {
		kv := etcdtest.Get(t, writer, key).Kvs
		return len(kv) == 1 && string(kv[0].Value) == ours
	})
	// The keeper still follows its key after the event it could not receive.
	del, err := cli.Delete(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "deleted key re-taken after the huge value", func() bool {
		kv := etcdtest.Get(t, cli, key).Kvs
		return len(kv) == 1 && kv[0].CreateRevision > del.Header.Revision
	})
	other := newManager(t, cli, subnet.Options{Logger: quietLogger()})
	prev := netip.MustParsePrefix("10.244.101.0/24")
	if _, err := writer.Put(ctx, other.LeaseKey(prev), huge); err != nil {
		t.Fatal(err)
	}
	if err := other.CheckPrevious(ctx, mustConfig(t, net16), prev, attrs(2)); !errors.Is(err, subnet.ErrWouldRenumber) {
		t.Errorf("CheckPrevious on a huge value = %v, want ErrWouldRenumber", err)
	}
}
