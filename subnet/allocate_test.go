//go:build !unit

package subnet_test

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

func TestAllocatorsRaceForExactPool(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, pool50)
	ctx := etcdtest.Context(t, 30*time.Second)

	leases := make([]subnet.Lease, 50)
	errs := make([]error, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			m := newManager(t, cli, subnet.Options{TTL: time.Minute})
			leases[i], errs[i] = m.AcquireLease(ctx, cfg, attrs(i+1), netip.Prefix{})
		})
	}
	wg.Wait()
	seen := map[netip.Prefix]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("allocator %d: %v", i, err)
		}
		l := leases[i]
		if !cfg.Contains(l.Subnet) {
			t.Errorf("allocator %d got %s outside the pool", i, l.Subnet)
		}
		if j, dup := seen[l.Subnet]; dup {
			t.Errorf("allocators %d and %d both got %s", j, i, l.Subnet)
		}
		seen[l.Subnet] = i
		if l.Expiration.IsZero() || l.Reservation {
			t.Errorf("allocator %d: lease %+v should expire and not be a reservation", i, l)
		}
	}
	if len(seen) != 50 {
		t.Fatalf("%d distinct subnets, want 50", len(seen))
	}
	// Same-length subnets that are distinct do not overlap; check anyway.
	for a := range seen {
		for b := range seen {
			if a != b && a.Overlaps(b) {
				t.Errorf("%s overlaps %s", a, b)
			}
		}
	}

	m := newManager(t, cli, subnet.Options{TTL: time.Minute})
	_, err := m.AcquireLease(ctx, cfg, attrs(51), netip.Prefix{})
	if !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Fatalf("51st allocation: err = %v, want ErrPoolExhausted", err)
	}
	all, err := m.ListLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 50 {
		t.Errorf("after exhaustion %d leases in etcd, want 50 (nothing half-written)", len(all))
	}
	for _, l := range all {
		if l.Attrs.PublicIP == "192.0.2.51" {
			t.Errorf("the failed allocator left %s behind", l.Subnet)
		}
	}
	// No orphan etcd lease from the failed attempt.
	ll, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ll.Leases) != 50 {
		t.Errorf("%d etcd leases, want 50", len(ll.Leases))
	}
}

func TestAcquireReusesOwnLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	ctx := etcdtest.Context(t, 20*time.Second)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})

	first, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	before := etcdtest.Get(t, cli, m.LeaseKey(first.Subnet)).Kvs[0]

	// A restart: a new manager with the same PublicIP and a different
	// "previous" subnet gets the lease it already holds.
	m2 := newManager(t, cli, subnet.Options{TTL: time.Hour})
	again, err := m2.AcquireLease(ctx, cfg, attrs(1), netip.MustParsePrefix("10.244.200.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Subnet != first.Subnet {
		t.Fatalf("restart got %s, want %s back", again.Subnet, first.Subnet)
	}
	// The key's etcd lease is renewed, not replaced: a restart grants
	// nothing, so one killed at any point leaves no orphan (issue 25 item 10).
	after := etcdtest.Get(t, cli, m.LeaseKey(first.Subnet)).Kvs[0]
	if after.Lease == 0 || after.Lease != before.Lease {
		t.Errorf("etcd lease %x -> %x, want the same one renewed", before.Lease, after.Lease)
	}
	if !again.Expiration.After(first.Expiration) {
		t.Errorf("expiration not refreshed: %s -> %s", first.Expiration, again.Expiration)
	}
	ll, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ll.Leases) != 1 {
		t.Errorf("%d etcd leases, want 1", len(ll.Leases))
	}
	// Another --subnet-lease-ttl: a new etcd lease of that TTL, the old
	// one revoked.
	m3 := newManager(t, cli, subnet.Options{TTL: 2 * time.Hour})
	if _, err := m3.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{}); err != nil {
		t.Fatal(err)
	}
	kv := etcdtest.Get(t, cli, m.LeaseKey(first.Subnet)).Kvs[0]
	ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
	if err != nil {
		t.Fatal(err)
	}
	if kv.Lease == after.Lease || ttl.GrantedTTL != 7200 {
		t.Errorf("after a TTL change: etcd lease %x (was %x), granted TTL %d, want a new lease of 7200 s", kv.Lease, after.Lease, ttl.GrantedTTL)
	}
	if ll, err := cli.Leases(ctx); err != nil || len(ll.Leases) != 1 {
		t.Errorf("after a TTL change: %v leases (%v), want 1 (the old one revoked)", ll, err)
	}
	// A changed port is written on reuse.
	newPort := subnet.NewLeaseAttrs(netip.MustParseAddr("192.0.2.1"), 9999)
	third, err := m2.AcquireLease(ctx, cfg, newPort, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Subnet != first.Subnet {
		t.Fatalf("got %s, want %s", third.Subnet, first.Subnet)
	}
	if v := string(etcdtest.Get(t, cli, m.LeaseKey(first.Subnet)).Kvs[0].Value); v != `{"PublicIP":"192.0.2.1","BackendType":"udp","BackendData":{"Port":9999}}` {
		t.Errorf("value %s", v)
	}
}

func TestAcquirePrefersPreviousSubnet(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	ctx := etcdtest.Context(t, 20*time.Second)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	prev := netip.MustParsePrefix("10.244.77.0/24")

	l, err := m.AcquireLease(ctx, cfg, attrs(1), prev)
	if err != nil {
		t.Fatal(err)
	}
	if l.Subnet != prev {
		t.Fatalf("got %s, want the previous subnet %s", l.Subnet, prev)
	}
	// Taken previous: another node gets a different one.
	other, err := m.AcquireLease(ctx, cfg, attrs(2), prev)
	if err != nil {
		t.Fatal(err)
	}
	if other.Subnet == prev {
		t.Fatalf("node 2 took node 1's subnet %s", prev)
	}
	// Out-of-range previous (wrong length, outside [min,max]) is not used.
	for _, bad := range []string{"10.244.0.0/24", "10.245.3.0/24", "10.244.3.0/25"} {
		l, err := m.AcquireLease(ctx, cfg, attrs(10), netip.MustParsePrefix(bad))
		if err != nil {
			t.Fatal(err)
		}
		if l.Subnet.String() == bad || !cfg.Contains(l.Subnet) {
			t.Errorf("previous %s: got %s", bad, l.Subnet)
		}
		if _, err := cli.Delete(ctx, m.LeaseKey(l.Subnet)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReservationsAreHonoured(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	// A pool of 2 subnets: 10.244.1.0 reserved for 192.0.2.9, 10.244.2.0 free.
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16","SubnetMin":"10.244.1.0","SubnetMax":"10.244.2.0"}`)
	ctx := etcdtest.Context(t, 20*time.Second)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	reserved := netip.MustParsePrefix("10.244.1.0/24")
	reservedValue := `{"PublicIP":"192.0.2.9","BackendType":"udp","BackendData":{"Port":8285}}`
	etcdtest.Put(t, cli, m.LeaseKey(reserved), reservedValue)

	// Another node, even asking for it as "previous", does not get it.
	l, err := m.AcquireLease(ctx, cfg, attrs(1), reserved)
	if err != nil {
		t.Fatal(err)
	}
	if l.Subnet == reserved {
		t.Fatalf("a reservation was taken by another node")
	}
	// The pool is now full for everybody else.
	if _, err := m.AcquireLease(ctx, cfg, attrs(2), netip.Prefix{}); !errors.Is(err, subnet.ErrPoolExhausted) {
		t.Fatalf("err = %v, want ErrPoolExhausted", err)
	}
	if v := string(etcdtest.Get(t, cli, m.LeaseKey(reserved)).Kvs[0].Value); v != reservedValue {
		t.Fatalf("reservation overwritten: %s", v)
	}
	// The owner of the reservation gets it, without TTL.
	own, err := m.AcquireLease(ctx, cfg, attrs(9), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if own.Subnet != reserved || !own.Reservation || !own.Expiration.IsZero() {
		t.Fatalf("owner got %+v, want the reservation %s", own, reserved)
	}
	kv := etcdtest.Get(t, cli, m.LeaseKey(reserved)).Kvs[0]
	if kv.Lease != 0 {
		t.Errorf("reservation got an etcd lease %x", kv.Lease)
	}
}

func TestAcquireRejectsBadAttrs(t *testing.T) {
	srv := etcdtest.Start(t)
	m := newManager(t, srv.Client(t), subnet.Options{})
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	_, err := m.AcquireLease(etcdtest.Context(t, 5*time.Second), cfg, subnet.LeaseAttrs{PublicIP: "x"}, netip.Prefix{})
	if err == nil {
		t.Fatal("AcquireLease with a bad PublicIP succeeded")
	}
}
