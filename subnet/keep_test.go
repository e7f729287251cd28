//go:build !unit

package subnet_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

// keepRunner runs KeepLease in the background and records renewals.
type keepRunner struct {
	mu      sync.Mutex
	renewed []subnet.Lease
	done    chan error
	cancel  context.CancelFunc
}

func startKeep(t *testing.T, m *subnet.Manager, cfg *subnet.Config, l subnet.Lease) *keepRunner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &keepRunner{done: make(chan error, 1), cancel: cancel}
	go func() {
		r.done <- m.KeepLease(ctx, cfg, l, func(l subnet.Lease) {
			r.mu.Lock()
			r.renewed = append(r.renewed, l)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("KeepLease did not return after cancel")
		}
	})
	return r
}

func (r *keepRunner) renewals() []subnet.Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]subnet.Lease(nil), r.renewed...)
}

func TestKeepLeaseRenewsShortTTL(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	// Margin (default 1h) >= TTL: renew every TTL/3.
	m := newManager(t, cli, subnet.Options{TTL: 2 * time.Second})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)
	key := m.LeaseKey(l.Subnet)
	// Across three TTLs the key never disappears.
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		if resp := etcdtest.Get(t, cli, key); len(resp.Kvs) == 0 {
			t.Fatalf("lease key %s vanished while KeepLease was running", key)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rs := r.renewals()
	if len(rs) < 4 {
		t.Fatalf("%d renewals in 6s with a 2s TTL, want at least 4", len(rs))
	}
	last := rs[len(rs)-1]
	if last.Subnet != l.Subnet || !last.Expiration.After(time.Now()) {
		t.Errorf("last renewal %+v: wrong subnet or already expired", last)
	}
	// Cancel: KeepLease returns nil and leaves the lease in etcd.
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("KeepLease after cancel: %v", err)
	}
	r.done <- nil // for the cleanup
	if len(etcdtest.Get(t, cli, key).Kvs) == 0 {
		t.Errorf("lease revoked on exit; it should be kept for a restart")
	}
}

func TestKeepLeaseRetakesDeletedKey(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	startKeep(t, m, cfg, l)
	key := m.LeaseKey(l.Subnet)
	for round := range 2 {
		del, err := cli.Delete(etcdtest.Context(t, 5*time.Second), key)
		if err != nil || del.Deleted != 1 {
			t.Fatalf("delete %s: %v (deleted %d)", key, err, del.Deleted)
		}
		etcdtest.Eventually(t, 1500*time.Millisecond, "deleted lease key re-taken", func() bool {
			resp := etcdtest.Get(t, cli, key)
			return len(resp.Kvs) == 1 && resp.Kvs[0].Lease != 0 && resp.Kvs[0].CreateRevision > del.Header.Revision
		})
		t.Logf("round %d: re-taken", round)
	}
}

func TestKeepLeaseRetakesDeletedReservationAsLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	reserved := netip.MustParsePrefix("10.244.5.0/24")
	a := attrs(1)
	v, _ := a.BackendData.MarshalJSON()
	etcdtest.Put(t, cli, m.LeaseKey(reserved), `{"PublicIP":"192.0.2.1","BackendType":"udp","BackendData":`+string(v)+`}`)
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, a, netip.Prefix{})
	if err != nil || !l.Reservation {
		t.Fatalf("AcquireLease = %+v, %v; want the reservation", l, err)
	}
	startKeep(t, m, cfg, l)
	if _, err := cli.Delete(etcdtest.Context(t, 5*time.Second), m.LeaseKey(reserved)); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 1500*time.Millisecond, "deleted reservation re-taken", func() bool {
		return len(etcdtest.Get(t, cli, m.LeaseKey(reserved)).Kvs) == 1
	})
}

func TestKeepLeaseLostToAnotherNode(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)
	// Our key is deleted and another node takes the subnet in one step.
	key := m.LeaseKey(l.Subnet)
	other := `{"PublicIP":"192.0.2.200","BackendType":"udp","BackendData":{"Port":8285}}`
	ctx := etcdtest.Context(t, 5*time.Second)
	grant, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, key, other, clientv3.WithLease(grant.ID))
	select {
	case err := <-r.done:
		if !errors.Is(err, subnet.ErrLeaseLost) {
			t.Fatalf("KeepLease returned %v, want ErrLeaseLost", err)
		}
		r.done <- nil
	case <-time.After(3 * time.Second):
		t.Fatal("KeepLease did not notice that another node took its subnet")
	}
	if v := string(etcdtest.Get(t, cli, key).Kvs[0].Value); v != other {
		t.Errorf("the other node's lease was overwritten: %s", v)
	}
}

func TestKeepLeaseExpiredAndTakenIsLost(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	// While this node is not running, its lease goes and another node
	// takes the subnet; KeepLease on restart must not renumber or steal.
	ctx := etcdtest.Context(t, 10*time.Second)
	if _, err := cli.Delete(ctx, m.LeaseKey(l.Subnet)); err != nil {
		t.Fatal(err)
	}
	other := newManager(t, cli, subnet.Options{TTL: time.Hour})
	if got, err := other.AcquireLease(ctx, cfg, attrs(2), l.Subnet); err != nil || got.Subnet != l.Subnet {
		t.Fatalf("other node: %+v, %v", got, err)
	}
	err = m.KeepLease(ctx, cfg, l, nil)
	if !errors.Is(err, subnet.ErrLeaseLost) {
		t.Fatalf("KeepLease = %v, want ErrLeaseLost", err)
	}
}

func TestKeepLeaseSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: 3 * time.Second})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)
	srv.Stop()
	time.Sleep(time.Second)
	srv.Restart(t)
	n := len(r.renewals())
	time.Sleep(4 * time.Second)
	select {
	case err := <-r.done:
		t.Fatalf("KeepLease returned %v across an etcd restart", err)
	default:
	}
	resp := etcdtest.Get(t, cli, m.LeaseKey(l.Subnet))
	if len(resp.Kvs) != 1 {
		t.Fatalf("lease key gone after the etcd restart")
	}
	if len(r.renewals()) <= n {
		t.Errorf("no renewal after the etcd restart")
	}
}

func TestKeepLeaseUpdatingPublishesNewAttrs(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: time.Hour})
	ip := netip.MustParseAddr("192.0.2.1")
	var k1, k2 [32]byte
	k1[0], k2[0] = 1, 2
	first := subnet.NewWireGuardLeaseAttrs(ip, 51820, k1)
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, first, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan subnet.LeaseAttrs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.KeepLeaseUpdating(ctx, cfg, l, nil, updates) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("KeepLeaseUpdating: %v", err)
		}
	}()
	key := m.LeaseKey(l.Subnet)
	before := etcdtest.Get(t, cli, key).Kvs[0]
	// A rotated key: published at once, on the same etcd lease.
	second := subnet.NewWireGuardLeaseAttrs(ip, 51820, k2)
	updates <- second
	etcdtest.Eventually(t, 3*time.Second, "new PublicKey in the lease", func() bool {
		kv := etcdtest.Get(t, cli, key).Kvs[0]
		return string(kv.Value) != string(before.Value) && strings.Contains(string(kv.Value), base64.StdEncoding.EncodeToString(k2[:])) && kv.Lease == before.Lease
	})
	// A writer putting the old key back is overruled: the new one is ours.
	etcdtest.Put(t, cli, key, string(before.Value), clientv3.WithLease(clientv3.LeaseID(before.Lease)))
	etcdtest.Eventually(t, 3*time.Second, "the new PublicKey restored over the old", func() bool {
		return strings.Contains(string(etcdtest.Get(t, cli, key).Kvs[0].Value), base64.StdEncoding.EncodeToString(k2[:]))
	})
	// Attributes of another PublicIP are refused (another node's).
	updates <- subnet.NewWireGuardLeaseAttrs(netip.MustParseAddr("192.0.2.9"), 51820, k1)
	time.Sleep(300 * time.Millisecond)
	if v := string(etcdtest.Get(t, cli, key).Kvs[0].Value); !strings.Contains(v, "192.0.2.1") || !strings.Contains(v, base64.StdEncoding.EncodeToString(k2[:])) {
		t.Errorf("after an update with another PublicIP the lease is %s", v)
	}
}
