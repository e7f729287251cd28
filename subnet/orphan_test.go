//go:build !unit

package subnet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

// leasesByKeys lists every etcd lease with the keys attached to it.
func leasesByKeys(t *testing.T, cli *clientv3.Client) map[clientv3.LeaseID][]string {
	t.Helper()
	ctx := etcdtest.Context(t, 10*time.Second)
	ls, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[clientv3.LeaseID][]string{}
	for _, l := range ls.Leases {
		ttl, err := cli.TimeToLive(ctx, l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if ttl.TTL <= 0 {
			continue // expired meanwhile
		}
		keys := []string{}
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		out[l.ID] = keys
	}
	return out
}

// Issue 25 item 10: 20 weftd starts killed with SIGKILL left 18 orphan
// etcd leases. Each start here is what weftd does (take the subnet lease,
// publish the node's endpoints on its liveness lease, keep both alive),
// then ends as a SIGKILL would: nothing revoked, the client gone. After 20
// such starts the node holds one subnet lease and one liveness lease, each
// with its key, and no lease without a key (before: one more liveness
// lease per start, renewed by every restart of an embedded etcd).
func TestKilledStartsLeaveNoOrphanLeases(t *testing.T) {
	srv := etcdtest.Start(t)
	cfg := mustConfig(t, pool50)
	admin := srv.Client(t)
	var prev subnet.Lease
	for i := range 20 {
		cli := srv.Client(t)
		m := newManager(t, cli, subnet.Options{Logger: quietLogger()})
		ctx, kill := context.WithCancel(context.Background())
		l, err := m.AcquireLease(ctx, cfg, attrs(1), prev.Subnet)
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if i > 0 && l.Subnet != prev.Subnet {
			t.Fatalf("start %d: subnet %s, was %s", i, l.Subnet, prev.Subnet)
		}
		prev = l
		pub := workload.New(m, quietLogger()).NewPublisher("192.0.2.1", 30*time.Second)
		var eps []workload.Attachment
		if i%2 == 0 { // with and without containers
			eps = []workload.Attachment{{IP: l.Subnet.Addr().Next().Next(), Namespace: "x", ContainerID: fmt.Sprint("c", i), IfName: "eth0"}}
		}
		if err := pub.Start(ctx, eps); err != nil {
			t.Fatalf("start %d: endpoints: %v", i, err)
		}
		done := make(chan struct{})
		go func() { pub.Run(ctx); close(done) }()
		go m.KeepLease(ctx, cfg, l, nil)
		time.Sleep(20 * time.Millisecond)
		kill()
		<-done
		cli.Close()
	}
	leases := leasesByKeys(t, admin)
	subnetKey := "/weft/network/subnets/" + prev.Subnet.Addr().String() + "-24"
	var subnetLeases, livenessLeases int
	for id, keys := range leases {
		switch {
		case len(keys) == 0:
			t.Errorf("lease %x holds no key (an orphan)", int64(id))
		case keys[0] == subnetKey:
			subnetLeases++
		case keys[0] == "/weft/network/liveness/192.0.2.1":
			livenessLeases++
		}
	}
	if subnetLeases != 1 || livenessLeases != 1 || len(leases) != 2 {
		t.Fatalf("after 20 killed starts: %d leases %v, want one subnet and one liveness lease", len(leases), leases)
	}
}
