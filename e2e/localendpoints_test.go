//go:build !unit

package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// A node's containers vanish from etcd when its endpoint liveness lease
// ends (it expires during an etcd partition longer than --endpoint-ttl;
// here it is revoked, which deletes the keys the same way) and come back
// only when weftd publishes them again. Meanwhile the node's own rules must
// keep them: a container isolated by policy must not open up.
func TestLocalEndpointsSurviveLostEndpointLease(t *testing.T) {
	// A long TTL: weftd notices the lost lease only at its next keepalive
	// (TTL/3), so the keys stay away for a while.
	c := newCluster(t, 2, cluster.Options{ExtraArgs: []string{"--endpoint-ttl", "90s"}})
	e := newMatrixEnv(t, c)
	n2 := c.Nodes[1]
	a := e.addPod("x", "a", n2)
	b := e.addPod("x", "b", n2)
	e.apply("deny", npYAML("x", "deny", "  podSelector: {matchLabels: {pod: b}}\n  policyTypes: [Ingress]"))
	dst := netip.AddrPortFrom(b.ctr.IP, 80)
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 3*time.Second); err != testbed.ErrNoEcho {
		t.Fatalf("x/a -> x/b with the policy: %v, want refused", err)
	}

	ctx := ctxFor(t, 30*time.Second)
	key := "/weft/network/endpoints/" + b.ctr.IP.String()
	resp, err := e.etcd.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("endpoint key %s: %+v, %v (want one key on a lease)", key, resp, err)
	}
	rev, err := e.etcd.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.etcd.Get(ctx, key)
	if err != nil || len(gone.Kvs) != 0 {
		t.Fatalf("endpoint key %s after revoking its lease: %+v, %v", key, gone, err)
	}
	// Node 2 applies the view without its containers...
	e.waitInForce(rev.Header.Revision, time.Now())
	still, err := e.etcd.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(still.Kvs) != 0 {
		t.Logf("weftd had published the endpoints again already (revision %d); the check below then proves less", still.Kvs[0].ModRevision)
	}
	// ... and still isolates x/b, which its registry holds.
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 3*time.Second); err != testbed.ErrNoEcho {
		t.Fatalf("x/a -> x/b after node 2's endpoints left etcd: %v, want refused (the node's own containers must stay in its rules)\n%s", err, n2.Log(10))
	}
	// weftd publishes them again on a new lease.
	err = testbed.WaitFor(ctxFor(t, 60*time.Second), 500*time.Millisecond, func() error {
		r, err := e.etcd.Get(ctxFor(t, 10*time.Second), key)
		if err != nil {
			return err
		}
		if len(r.Kvs) != 1 {
			return fmt.Errorf("endpoint %s not published again", b.ctr.IP)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.Probe(a.ctr.NS.Path(), "tcp", dst, 3*time.Second); err != testbed.ErrNoEcho {
		t.Fatalf("x/a -> x/b after republishing: %v, want refused", err)
	}
}
