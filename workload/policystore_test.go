//go:build !unit

package workload_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
	"github.com/weftnet/weft/workload"
)

func TestNamespaceLabels(t *testing.T) {
	srv := etcdtest.Start(t)
	m := newStore(t, srv.Client(t), subnet.Options{})
	ctx := etcdtest.Context(t, 30*time.Second)

	ns, err := m.LabelNamespace(ctx, "x", map[string]string{"team": "a", "example.com/tier": "web"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"team": "a", "example.com/tier": "web", workload.NamespaceNameLabel: "x"}
	if !maps.Equal(ns.Labels, want) {
		t.Fatalf("labels %v, want %v", ns.Labels, want)
	}
	ns, err = m.LabelNamespace(ctx, "x", map[string]string{"team": "b"}, []string{"example.com/tier"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"team": "b", workload.NamespaceNameLabel: "x"}; !maps.Equal(ns.Labels, want) {
		t.Fatalf("after relabel: %v, want %v", ns.Labels, want)
	}
	if _, err := m.LabelNamespace(ctx, "y", nil, nil); err != nil {
		t.Fatal(err)
	}
	list, err := m.ListNamespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "x" || list[1].Name != "y" || list[1].Labels[workload.NamespaceNameLabel] != "y" {
		t.Fatalf("list %+v", list)
	}

	// Refused, naming the problem; nothing changes.
	for _, c := range []struct {
		name   string
		set    map[string]string
		remove []string
		errHas string
	}{
		{"X", nil, nil, `namespace "X"`},
		{"x", map[string]string{"bad key!": "v"}, nil, `label key "bad key!"`},
		{"x", map[string]string{"k": "-v"}, nil, `label k="-v"`},
		{"x", map[string]string{workload.NamespaceNameLabel: "z"}, nil, "set by weft"},
		{"x", nil, []string{workload.NamespaceNameLabel}, "cannot be removed"},
	} {
		if _, err := m.LabelNamespace(ctx, c.name, c.set, c.remove); err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("LabelNamespace(%q, %v, %v): err %v, want %q", c.name, c.set, c.remove, err, c.errHas)
		}
	}
	list2, _ := m.ListNamespaces(ctx)
	if fmt.Sprint(list2) != fmt.Sprint(list) {
		t.Fatalf("refused changes changed the namespaces: %v -> %v", list, list2)
	}

	found, err := m.DeleteNamespace(ctx, "y")
	if err != nil || !found {
		t.Fatalf("delete y: %v %v", found, err)
	}
	if found, err := m.DeleteNamespace(ctx, "y"); err != nil || found {
		t.Fatalf("delete y again: %v %v", found, err)
	}
}

func policyJSON(ns, name string) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"namespace":%q,"name":%q},"spec":{"podSelector":{}}}`, ns, name))
}

func TestPoliciesAllOrNothing(t *testing.T) {
	srv := etcdtest.Start(t)
	m := newStore(t, srv.Client(t), subnet.Options{})
	ctx := etcdtest.Context(t, 30*time.Second)

	ps := []workload.Policy{
		{Namespace: "x", Name: "deny-all", JSON: policyJSON("x", "deny-all")},
		{Namespace: "y", Name: "allow.web", JSON: policyJSON("y", "allow.web")},
		{Namespace: "x", Name: "allow-a", JSON: policyJSON("x", "allow-a")},
	}
	if _, err := m.ApplyPolicies(ctx, ps); err != nil {
		t.Fatal(err)
	}
	all, err := m.ListPolicies(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range all {
		names = append(names, p.Namespace+"/"+p.Name)
		if p.Revision == 0 {
			t.Errorf("%s/%s: no revision", p.Namespace, p.Name)
		}
	}
	if got := strings.Join(names, " "); got != "x/allow-a x/deny-all y/allow.web" {
		t.Fatalf("list: %s", got)
	}
	inX, err := m.ListPolicies(ctx, "x")
	if err != nil || len(inX) != 2 {
		t.Fatalf("list x: %v %v", inX, err)
	}
	p, found, err := m.GetPolicy(ctx, "y", "allow.web")
	if err != nil || !found || string(p.JSON) != string(policyJSON("y", "allow.web")) {
		t.Fatalf("get: %v %v %s", found, err, p.JSON)
	}
	if _, found, err := m.GetPolicy(ctx, "y", "nope"); err != nil || found {
		t.Fatalf("get missing: %v %v", found, err)
	}

	// One bad policy among good ones: nothing is written.
	for _, bad := range []struct {
		ps     []workload.Policy
		errHas string
	}{
		{[]workload.Policy{{Namespace: "z", Name: "new", JSON: policyJSON("z", "new")}, {Namespace: "z", Name: "Bad", JSON: policyJSON("z", "Bad")}}, `policy name "Bad"`},
		{[]workload.Policy{{Namespace: "z", Name: "new", JSON: policyJSON("z", "new")}, {Namespace: "z", Name: "j", JSON: []byte("[1]")}}, "not a JSON object"},
		{[]workload.Policy{{Namespace: "z", Name: "new", JSON: policyJSON("z", "new")}, {Namespace: "z", Name: "new", JSON: policyJSON("z", "new")}}, "given twice"},
		{nil, "none given"},
		{make([]workload.Policy, workload.MaxPoliciesPerApply+1), "at most 128"},
	} {
		if _, err := m.ApplyPolicies(ctx, bad.ps); err == nil || !strings.Contains(err.Error(), bad.errHas) {
			t.Errorf("apply: err %v, want %q", err, bad.errHas)
		}
	}
	if z, _ := m.ListPolicies(ctx, "z"); len(z) != 0 {
		t.Fatalf("a refused apply wrote %v", z)
	}

	// The maximum in one apply works (one transaction).
	var many []workload.Policy
	for i := range workload.MaxPoliciesPerApply {
		name := fmt.Sprintf("p%d", i)
		many = append(many, workload.Policy{Namespace: "z", Name: name, JSON: policyJSON("z", name)})
	}
	if _, err := m.ApplyPolicies(ctx, many); err != nil {
		t.Fatal(err)
	}
	if z, _ := m.ListPolicies(ctx, "z"); len(z) != workload.MaxPoliciesPerApply {
		t.Fatalf("stored %d of %d", len(z), workload.MaxPoliciesPerApply)
	}

	if found, err := m.DeletePolicy(ctx, "x", "deny-all"); err != nil || !found {
		t.Fatalf("delete: %v %v", found, err)
	}
	if found, err := m.DeletePolicy(ctx, "x", "deny-all"); err != nil || found {
		t.Fatalf("delete again: %v %v", found, err)
	}
}

func ep(ip, ns, pod string, labels map[string]string) workload.Attachment {
	return workload.Attachment{IP: netip.MustParseAddr(ip), Namespace: ns, Pod: pod, Labels: labels, ContainerID: "c-" + pod, IfName: "eth0"}
}

func attachmentIPs(t testing.TB, m *workload.Store) string {
	t.Helper()
	eps, err := m.ListAttachments(etcdtest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range eps {
		s = append(s, e.IP.String()+"@"+e.Node)
	}
	return strings.Join(s, " ")
}

func TestEndpointPublisher(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newStore(t, cli, subnet.Options{})
	ctx := etcdtest.Context(t, 60*time.Second)

	// A stale attachment of node A from an earlier run, one of node B.
	staleA := m.NewPublisher("192.0.2.1", 0)
	if err := staleA.Start(ctx, []workload.Attachment{ep("10.244.1.9", "x", "old", nil)}); err != nil {
		t.Fatal(err)
	}
	b := m.NewPublisher("192.0.2.2", 0)
	if err := b.Start(ctx, []workload.Attachment{ep("10.244.2.2", "y", "b", map[string]string{"app": "db"})}); err != nil {
		t.Fatal(err)
	}

	// Node A restarts knowing two containers: the stale one goes.
	a := m.NewPublisher("192.0.2.1", 0)
	if err := a.Start(ctx, []workload.Attachment{ep("10.244.1.2", "x", "a", map[string]string{"app": "web"}), ep("10.244.1.3", "x", "c", nil)}); err != nil {
		t.Fatal(err)
	}
	if got, want := attachmentIPs(t, m), "10.244.1.2@192.0.2.1 10.244.1.3@192.0.2.1 10.244.2.2@192.0.2.2"; got != want {
		t.Fatalf("after start: %s, want %s", got, want)
	}
	eps, _ := m.ListAttachments(ctx)
	if eps[0].Labels["app"] != "web" || eps[0].Namespace != "x" || eps[0].Pod != "a" || eps[0].ContainerID != "c-a" {
		t.Fatalf("endpoint %+v", eps[0])
	}

	if err := a.Publish(ctx, ep("10.244.1.4", "z", "d", nil)); err != nil {
		t.Fatal(err)
	}
	// podman's pod name is the container name.
	if err := a.Publish(ctx, ep("10.244.1.6", "z", "nice_lovelace", nil)); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, ep("10.244.1.7", "z", "bad/name", nil)); err == nil || !strings.Contains(err.Error(), `pod name "bad/name"`) {
		t.Fatalf("bad pod name: %v", err)
	}
	if _, err := a.Withdraw(ctx, netip.MustParseAddr("10.244.1.6")); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, ep("10.244.1.5", "Bad_NS", "e", nil)); err == nil || !strings.Contains(err.Error(), `namespace "Bad_NS"`) {
		t.Fatalf("bad namespace: %v", err)
	}
	if found, err := a.Withdraw(ctx, netip.MustParseAddr("10.244.1.3")); err != nil || !found {
		t.Fatalf("withdraw: %v %v", found, err)
	}
	// A does not delete B's attachment.
	if found, err := a.Withdraw(ctx, netip.MustParseAddr("10.244.2.2")); err != nil || found {
		t.Fatalf("withdraw other node's: %v %v", found, err)
	}
	if got, want := attachmentIPs(t, m), "10.244.1.2@192.0.2.1 10.244.1.4@192.0.2.1 10.244.2.2@192.0.2.2"; got != want {
		t.Fatalf("after publish/withdraw: %s, want %s", got, want)
	}
	if n := len(a.Attachments()); n != 2 {
		t.Fatalf("A's own list has %d", n)
	}

	// The lease is revoked under a running publisher: it publishes again.
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(runCtx) })
	leaseOf := func(ip string) clientv3.LeaseID {
		resp := etcdtest.Get(t, cli, "/weft/network/endpoints/"+ip)
		if len(resp.Kvs) == 0 {
			return 0
		}
		return clientv3.LeaseID(resp.Kvs[0].Lease)
	}
	first := leaseOf("10.244.1.2")
	if _, err := cli.Revoke(ctx, first); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 20*time.Second, "A republishes after losing its lease", func() bool {
		l := leaseOf("10.244.1.2")
		return l != 0 && l != first && leaseOf("10.244.1.4") == l
	})
	stopRun()
	wg.Wait()
}

// A node that dies (stops renewing, without revoking) loses its attachments
// once its liveness lease expires; other nodes' stay.
func TestEndpointsVanishWithDeadNode(t *testing.T) {
	srv := etcdtest.Start(t)
	m := newStore(t, srv.Client(t), subnet.Options{})
	ctx := etcdtest.Context(t, 60*time.Second)

	dead := m.NewPublisher("192.0.2.1", 2*time.Second)
	alive := m.NewPublisher("192.0.2.2", 2*time.Second)
	for _, p := range []*workload.Publisher{dead, alive} {
		ip := "10.244.1.2"
		if p == alive {
			ip = "10.244.2.2"
		}
		if err := p.Start(ctx, []workload.Attachment{ep(ip, "x", "p", nil)}); err != nil {
			t.Fatal(err)
		}
	}
	deadCtx, kill := context.WithCancel(ctx)
	aliveCtx, stopAlive := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { dead.Run(deadCtx) })
	wg.Go(func() { alive.Run(aliveCtx) })
	t.Cleanup(func() { kill(); stopAlive(); wg.Wait() })

	// Both stay while renewed (well past the TTL).
	time.Sleep(4 * time.Second)
	if got := attachmentIPs(t, m); got != "10.244.1.2@192.0.2.1 10.244.2.2@192.0.2.2" {
		t.Fatalf("while both renew: %s", got)
	}
	kill()
	etcdtest.Eventually(t, 20*time.Second, "the dead node's endpoint vanishes", func() bool {
		return attachmentIPs(t, m) == "10.244.2.2@192.0.2.2"
	})
}

func TestWatchView(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newStore(t, cli, subnet.Options{})
	ctx := etcdtest.Context(t, 60*time.Second)

	if _, err := m.LabelNamespace(ctx, "x", map[string]string{"team": "a"}, nil); err != nil {
		t.Fatal(err)
	}
	pub := m.NewPublisher("192.0.2.1", 0)
	if err := pub.Start(ctx, []workload.Attachment{ep("10.244.1.2", "y", "a", map[string]string{"app": "web"})}); err != nil {
		t.Fatal(err)
	}
	// Malformed keys and values are left out.
	etcdtest.Put(t, cli, "/weft/network/endpoints/not-an-ip", `{}`)
	etcdtest.Put(t, cli, "/weft/network/endpoints/10.244.1.66", `{"ip":"10.244.1.67","namespace":"x","node":"n"}`)
	etcdtest.Put(t, cli, "/weft/network/namespaces/q", `{"labels":{"bad key!":"v"}}`)
	etcdtest.Put(t, cli, "/weft/network/policies/x", `{}`)
	// A malformed policy value under a namespace is kept: the policy
	// engine rejects it and isolates x (fails closed), not loses it unseen.
	etcdtest.Put(t, cli, "/weft/network/policies/x/arr", `[1]`)
	etcdtest.Put(t, cli, "/weft/network/policies/x/junk", `{"spec":{"bogus":1}}`)

	var mu sync.Mutex
	var views []workload.View
	last := func() workload.View {
		mu.Lock()
		defer mu.Unlock()
		if len(views) == 0 {
			return workload.View{}
		}
		return views[len(views)-1]
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		m.WatchView(wctx, 0, func(v workload.View) {
			mu.Lock()
			views = append(views, v)
			mu.Unlock()
		})
	})
	t.Cleanup(func() { stop(); wg.Wait() })

	etcdtest.Eventually(t, 10*time.Second, "first view", func() bool { return last().Revision != 0 })
	v := last()
	if len(v.Attachments) != 1 || v.Attachments[0].IP.String() != "10.244.1.2" || v.Attachments[0].Node != "192.0.2.1" {
		t.Fatalf("endpoints %+v", v.Attachments)
	}
	// x is labelled; y exists through its attachment.
	if len(v.Namespaces) != 2 || v.Namespaces[0].Name != "x" || v.Namespaces[0].Labels["team"] != "a" ||
		v.Namespaces[1].Name != "y" || v.Namespaces[1].Labels[workload.NamespaceNameLabel] != "y" || len(v.Namespaces[1].Labels) != 1 {
		t.Fatalf("namespaces %+v", v.Namespaces)
	}
	if len(v.Policies) != 2 || v.Policies[0].Name != "arr" || v.Policies[1].Name != "junk" || string(v.Policies[0].JSON) != "[1]" {
		t.Fatalf("policies %+v, want the two malformed ones of x", v.Policies)
	}
	if _, err := cli.Delete(ctx, "/weft/network/policies/x/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "malformed policies deleted", func() bool { return len(last().Policies) == 0 })
	v = last()

	// Each kind of change arrives, in one view with what preceded it.
	rev := v.Revision
	if _, err := m.ApplyPolicies(ctx, []workload.Policy{{Namespace: "z", Name: "deny", JSON: policyJSON("z", "deny")}}); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "policy reaches the view", func() bool { return len(last().Policies) == 1 })
	v = last()
	if v.Revision <= rev || v.Policies[0].Namespace != "z" || v.Namespaces[2].Name != "z" {
		t.Fatalf("view after apply: %+v", v)
	}
	if err := pub.Publish(ctx, ep("10.244.1.3", "x", "b", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LabelNamespace(ctx, "x", map[string]string{"team": "b"}, nil); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "endpoint and label reach the view", func() bool {
		v := last()
		return len(v.Attachments) == 2 && v.Namespaces[0].Labels["team"] == "b"
	})
	if _, err := m.DeletePolicy(ctx, "z", "deny"); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Withdraw(ctx, netip.MustParseAddr("10.244.1.2")); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "deletions reach the view", func() bool {
		v := last()
		return len(v.Policies) == 0 && len(v.Attachments) == 1 && len(v.Namespaces) == 1
	})

	// Lease renewals and the config are not view changes.
	mu.Lock()
	n := len(views)
	mu.Unlock()
	etcdtest.Put(t, cli, "/weft/network/config", `{"Network":"10.244.0.0/16"}`)
	etcdtest.Put(t, cli, "/weft/network/subnets/10.244.9.0-24", `{"PublicIP":"192.0.2.9","BackendType":"udp","BackendData":{"Port":8285}}`)
	if _, err := m.LabelNamespace(ctx, "w", nil, nil); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 10*time.Second, "namespace w", func() bool { return len(last().Namespaces) == 2 })
	mu.Lock()
	if len(views) != n+1 {
		t.Errorf("%d views for one relevant change among unrelated ones", len(views)-n)
	}
	mu.Unlock()

	// After an etcd restart the view follows again.
	srv.Restart(t)
	if _, err := m.ApplyPolicies(ctx, []workload.Policy{{Namespace: "x", Name: "after", JSON: policyJSON("x", "after")}}); err != nil {
		t.Fatal(err)
	}
	etcdtest.Eventually(t, 30*time.Second, "change after etcd restart", func() bool { return len(last().Policies) == 1 })
}

// Many changes in quick succession are coalesced into few views, and the
// last view has them all.
func TestWatchViewCoalesces(t *testing.T) {
	srv := etcdtest.Start(t)
	m := newStore(t, srv.Client(t), subnet.Options{Logger: quietLogger()})
	ctx := etcdtest.Context(t, 60*time.Second)
	var mu sync.Mutex
	var views []workload.View
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		m.WatchView(wctx, 0, func(v workload.View) {
			time.Sleep(50 * time.Millisecond) // a slow consumer
			mu.Lock()
			views = append(views, v)
			mu.Unlock()
		})
	})
	t.Cleanup(func() { stop(); wg.Wait() })
	pub := m.NewPublisher("192.0.2.1", 0)
	if err := pub.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := pub.Publish(ctx, ep(fmt.Sprintf("10.244.%d.%d", 1+i/250, 2+i%250), "x", fmt.Sprintf("p%d", i), nil)); err != nil {
			t.Fatal(err)
		}
	}
	etcdtest.Eventually(t, 20*time.Second, "all endpoints in the view", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(views) > 0 && len(views[len(views)-1].Attachments) == n
	})
	mu.Lock()
	defer mu.Unlock()
	if len(views) > n/2 {
		t.Errorf("%d views for %d changes: not coalesced", len(views), n)
	}
	for i := 1; i < len(views); i++ {
		if views[i].Revision < views[i-1].Revision {
			t.Errorf("revision went back: %d then %d", views[i-1].Revision, views[i].Revision)
		}
	}
}

// A withdrawal that fails while etcd is unreachable is done once it is
// back; an IP published again meanwhile is kept.
func TestWithdrawRetriedAfterOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	direct := newStore(t, srv.Client(t), subnet.Options{})
	proxy := etcdtest.NewProxy(t, strings.TrimPrefix(srv.Endpoints()[0], "http://"))
	cli := etcdtest.NewClient(t, subnet.ClientOptions{Endpoints: []string{proxy.Endpoint()}, DialTimeout: 2 * time.Second})
	m := newStore(t, cli, subnet.Options{Logger: quietLogger()})
	ctx := etcdtest.Context(t, 90*time.Second)

	pub := m.NewPublisher("192.0.2.1", 0)
	if err := pub.Start(ctx, []workload.Attachment{ep("10.244.1.2", "x", "a", nil), ep("10.244.1.3", "x", "b", nil)}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { pub.Run(runCtx) })
	t.Cleanup(func() { stop(); wg.Wait() })

	proxy.Block()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := pub.Withdraw(wctx, netip.MustParseAddr("10.244.1.2"))
	cancel()
	if err == nil || !strings.Contains(err.Error(), "deleted later") {
		t.Fatalf("withdraw with etcd away: %v", err)
	}
	proxy.Unblock()
	etcdtest.Eventually(t, 30*time.Second, "the withdrawal is done after the outage", func() bool {
		return attachmentIPs(t, direct) == "10.244.1.3@192.0.2.1"
	})
	if n := len(pub.Attachments()); n != 1 {
		t.Fatalf("publisher still lists %d endpoints", n)
	}
}

// Applying what is stored writes nothing (every node would rebuild its
// rules for it); a changed policy among unchanged ones is the only write.
func TestApplyPoliciesSkipsUnchanged(t *testing.T) {
	srv := etcdtest.Start(t)
	leases := subnet.NewManager(srv.Client(t), subnet.Options{Logger: testLogger(t)})
	m := workload.New(leases, testLogger(t))
	ctx := etcdtest.Context(t, 30*time.Second)
	a := workload.Policy{Namespace: "x", Name: "a", JSON: policyJSON("x", "a")}
	b := workload.Policy{Namespace: "x", Name: "b", JSON: policyJSON("x", "b")}
	apply := func(want ...workload.PolicyOutcome) {
		t.Helper()
		got, err := m.ApplyPolicies(ctx, []workload.Policy{a, b})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
	}
	revision := func() int64 {
		t.Helper()
		r, err := leases.Revision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	stored := func(p workload.Policy) workload.Policy {
		t.Helper()
		s, found, err := m.GetPolicy(ctx, p.Namespace, p.Name)
		if err != nil || !found {
			t.Fatalf("get %s/%s: %v %v", p.Namespace, p.Name, found, err)
		}
		return s
	}

	apply(workload.PolicyCreated, workload.PolicyCreated)
	rev, aRev := revision(), stored(a).Revision
	apply(workload.PolicyUnchanged, workload.PolicyUnchanged)
	if r := revision(); r != rev {
		t.Fatalf("applying the stored policies again moved etcd's revision %d -> %d", rev, r)
	}

	b.JSON = []byte(strings.Replace(string(b.JSON), `"podSelector":{}`, `"podSelector":{"matchLabels":{"app":"db"}}`, 1))
	apply(workload.PolicyUnchanged, workload.PolicyConfigured)
	if r := revision(); r != rev+1 {
		t.Fatalf("one changed policy: revision %d -> %d, want one write", rev, r)
	}
	if s := stored(a); s.Revision != aRev {
		t.Fatalf("x/a was rewritten (revision %d -> %d) though unchanged", aRev, s.Revision)
	}
	if s := stored(b); string(s.JSON) != string(b.JSON) {
		t.Fatalf("x/b stored %s, want %s", s.JSON, b.JSON)
	}
}

// A policy changed by another writer between ApplyPolicies' read and its
// write is not lost unseen: the transaction fails on its ModRevision, and
// the apply reads again and decides again.
func TestApplyPoliciesConcurrentChange(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newStore(t, cli, subnet.Options{})
	other := newStore(t, srv.Client(t), subnet.Options{})
	ctx := etcdtest.Context(t, 30*time.Second)
	a := workload.Policy{Namespace: "x", Name: "a", JSON: policyJSON("x", "a")}
	b := workload.Policy{Namespace: "x", Name: "b", JSON: policyJSON("x", "b")}
	if _, err := m.ApplyPolicies(ctx, []workload.Policy{a, b}); err != nil {
		t.Fatal(err)
	}
	// The other writer changes x/b (which this apply finds unchanged) after
	// the first read: the apply must not report "unchanged" over the other
	// writer's value, but see it and put its own back.
	b2 := b
	b2.JSON = []byte(strings.Replace(string(b.JSON), `"podSelector":{}`, `"podSelector":{"matchLabels":{"other":"writer"}}`, 1))
	a2 := a
	a2.JSON = []byte(strings.Replace(string(a.JSON), `"podSelector":{}`, `"podSelector":{"matchLabels":{"app":"new"}}`, 1))
	reads := 0
	got, err := m.ApplyPoliciesWithHook(ctx, []workload.Policy{a2, b}, func() {
		reads++
		if reads == 1 {
			if _, err := other.ApplyPolicies(ctx, []workload.Policy{b2}); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if reads != 2 {
		t.Fatalf("%d reads, want 2 (the first write must fail on the concurrent change)", reads)
	}
	if want := []workload.PolicyOutcome{workload.PolicyConfigured, workload.PolicyConfigured}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	for _, p := range []workload.Policy{a2, b} {
		s, _, err := m.GetPolicy(ctx, p.Namespace, p.Name)
		if err != nil || string(s.JSON) != string(p.JSON) {
			t.Fatalf("%s/%s stored %s (%v), want %s", p.Namespace, p.Name, s.JSON, err, p.JSON)
		}
	}
}

// Issue 25 item 3: more than the client's 16 MiB receive limit of policy
// data (here 20 policies of 1 MiB) used to stop the view from loading
// ("received message larger than max"), and a restarted node ran without
// it. The view is read in pages at one revision: it loads, whole.
func TestViewLoadsBeyondReceiveLimit(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newStore(t, cli, subnet.Options{Logger: quietLogger()})
	ctx := etcdtest.Context(t, 2*time.Minute)
	if _, err := m.LabelNamespace(ctx, "x", map[string]string{"team": "a"}, nil); err != nil {
		t.Fatal(err)
	}
	pub := m.NewPublisher("192.0.2.1", 0)
	if err := pub.Start(ctx, []workload.Attachment{ep("10.244.1.2", "y", "a", nil)}); err != nil {
		t.Fatal(err)
	}
	big := `{"metadata":{"annotations":{"a":"` + strings.Repeat("B", 1<<20) + `"}}}`
	for i := range 20 {
		etcdtest.Put(t, cli, fmt.Sprintf("/weft/network/policies/z/p%02d", i), big)
	}
	if resp, err := cli.Get(ctx, "/weft/network/policies/", clientv3.WithPrefix()); err == nil {
		t.Fatalf("an unpaged listing of %d policies fit the receive limit; the test proves nothing", len(resp.Kvs))
	}
	v, err := m.GetView(ctx)
	if err != nil {
		t.Fatalf("GetView: %v", err)
	}
	if len(v.Policies) != 20 || len(v.Attachments) != 1 || len(v.Namespaces) != 3 || len(v.Policies[19].JSON) != len(big) {
		t.Fatalf("view: %d policies, %d endpoints, %d namespaces; want 20, 1, 3 (x, y, z)", len(v.Policies), len(v.Attachments), len(v.Namespaces))
	}
	// The view's revision covers every directory: a write after it is newer.
	resp, err := cli.Put(ctx, "/weft/network/namespaces/w", `{"labels":{}}`)
	if err != nil {
		t.Fatal(err)
	}
	if v.Revision == 0 || v.Revision >= resp.Header.Revision {
		t.Errorf("view revision %d, next write %d", v.Revision, resp.Header.Revision)
	}
}
