//go:build !unit

package subnet_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

func TestClusterWithOneMemberDown(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 3)
	cli := c.Client(t)
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	m := newManager(t, cli, subnet.Options{TTL: 2 * time.Second})
	l, err := m.AcquireLease(etcdtest.Context(t, 10*time.Second), cfg, attrs(1), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	r := startKeep(t, m, cfg, l)

	c.StopMember(0)
	// Allocation goes on with two of three members.
	l2, err := m.AcquireLease(etcdtest.Context(t, 20*time.Second), cfg, attrs(2), netip.Prefix{})
	if err != nil {
		t.Fatalf("allocation with one member down: %v", err)
	}
	if l2.Subnet == l.Subnet {
		t.Fatalf("two nodes share %s", l.Subnet)
	}
	// Renewal goes on: the 2s lease survives several TTLs.
	n := len(r.renewals())
	time.Sleep(5 * time.Second)
	if len(etcdtest.Get(t, cli, m.LeaseKey(l.Subnet)).Kvs) == 0 {
		t.Fatalf("lease %s expired with one member down", l.Subnet)
	}
	if got := len(r.renewals()); got < n+3 {
		t.Errorf("%d renewals in 5s with one member down, want at least 3", got-n)
	}
	if m.LastContact().Before(time.Now().Add(-2 * time.Second)) {
		t.Errorf("LastContact %s is stale", m.LastContact())
	}
}
