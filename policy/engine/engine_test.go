package engine

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/workload"
)

func TestPolicyInputFromView(t *testing.T) {
	v := workload.View{
		Attachments: []workload.Attachment{
			{IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", Pod: "a", Labels: map[string]string{"app": "web"}, Node: "192.0.2.1", ContainerID: "c1", IfName: "eth0"},
			{IP: netip.MustParseAddr("10.244.2.2"), Namespace: "y", Pod: "b", Node: "192.0.2.2"},
		},
		Namespaces: []workload.Namespace{{Name: "x", Labels: map[string]string{"team": "red"}}, {Name: "y"}},
		Policies:   []workload.Policy{{Namespace: "x", Name: "deny", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{}}}`)}},
	}
	in, rejected := Input(v, "192.0.2.1")
	if len(rejected) != 0 || len(in.FailClosed) != 0 {
		t.Fatalf("rejected %+v", rejected)
	}
	if in.Endpoints[0].HostIf != cni.HostVethName("c1", "eth0") || in.Endpoints[1].HostIf != "" {
		t.Errorf("host ports %q %q: want the plugin's veth name for the local container only", in.Endpoints[0].HostIf, in.Endpoints[1].HostIf)
	}
	if in.Node != "192.0.2.1" || len(in.Endpoints) != 2 || in.Endpoints[0].Name != "a" || in.Endpoints[0].Labels["app"] != "web" ||
		len(in.Namespaces) != 2 || in.Namespaces[0].Labels["team"] != "red" || len(in.Policies) != 1 || in.Policies[0].Name != "deny" {
		t.Fatalf("input %+v", in)
	}

	// A stored value that does not parse (a foreign writer's: an unknown
	// field, or another object) is left out and named; its namespace fails
	// closed; the other policies stay.
	v.Policies = append(v.Policies,
		workload.Policy{Namespace: "x", Name: "bad", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"bad","namespace":"x"},"spec":{"podSelector":{},"bogus":1}}`)},
		workload.Policy{Namespace: "y", Name: "other", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{}}}`)},
		workload.Policy{Namespace: "y", Name: "junk", JSON: []byte(`[1,2]`)},
	)
	in, rejected = Input(v, "192.0.2.1")
	if len(in.Policies) != 1 || in.Policies[0].Name != "deny" {
		t.Errorf("policies %+v, want the good one only", in.Policies)
	}
	if len(rejected) != 3 || rejected[0].Namespace != "x" || rejected[0].Name != "bad" || rejected[1].Name != "other" || rejected[2].Name != "junk" ||
		!strings.Contains(rejected[0].Reason, "bogus") || !strings.Contains(rejected[1].Reason, "another object") {
		t.Errorf("rejected %+v", rejected)
	}
	if !slices.Equal(in.FailClosed, []string{"x", "y"}) {
		t.Errorf("fail closed %v, want x y", in.FailClosed)
	}
}

func TestWaitEnforced(t *testing.T) {
	p := New(Options{Node: "192.0.2.1", Bridge: "weftbr0"})
	ip := netip.MustParseAddr("10.244.1.2")
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if err := p.WaitApplied(short); err == nil {
		t.Fatal("WaitApplied returned nil before any apply")
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitEnforced(context.Background(), ip) }()
	p.markEnforced(map[netip.Addr]bool{netip.MustParseAddr("10.244.1.3"): true}, nil) // another container
	select {
	case err := <-done:
		t.Fatalf("returned %v before the container's rules were in force", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.markEnforced(map[netip.Addr]bool{ip: true}, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.WaitApplied(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.WaitEnforced(ctx, netip.MustParseAddr("10.244.1.9")); !errors.Is(err, ErrNotEnforced) {
		t.Fatal("waited for a container never enforced and got nil")
	}
}

// This node's containers stay in the view its rules are built from when
// etcd lost them (the endpoint lease expired during a partition), and the
// registry's record wins over the view's for the same address.
func TestWithLocalAttachments(t *testing.T) {
	const node, other = "192.0.2.1", "192.0.2.2"
	ip := netip.MustParseAddr
	remote := workload.Attachment{IP: ip("10.244.2.2"), Namespace: "y", Node: other}
	stale := workload.Attachment{IP: ip("10.244.1.3"), Namespace: "x", Labels: map[string]string{"app": "old"}, Node: node}
	v := workload.View{Attachments: []workload.Attachment{stale, remote}, Revision: 7}
	local := []workload.Attachment{
		{IP: ip("10.244.1.2"), Namespace: "x", Labels: map[string]string{"app": "db"}, Node: node, ContainerID: "c2", IfName: "eth0"},
		{IP: ip("10.244.1.3"), Namespace: "x", Labels: map[string]string{"app": "web"}, Node: node, ContainerID: "c3", IfName: "eth0"},
	}
	got := WithLocalAttachments(v, local)
	var ips []string
	for _, ep := range got.Attachments {
		ips = append(ips, ep.IP.String()+"/"+ep.Node+"/"+ep.Labels["app"])
	}
	want := "10.244.1.2/192.0.2.1/db 10.244.1.3/192.0.2.1/web 10.244.2.2/192.0.2.2/"
	if strings.Join(ips, " ") != want {
		t.Fatalf("merged endpoints %v, want %s", ips, want)
	}
	if got.Revision != 7 || len(v.Attachments) != 2 || v.Attachments[0].Labels["app"] != "old" {
		t.Fatalf("merge changed the view it was given or its revision: %+v -> %+v", v, got)
	}
	// The view without them (what etcd holds after the lease expired):
	// the rules still isolate them.
	in, _ := Input(WithLocalAttachments(workload.View{Attachments: []workload.Attachment{remote}}, local), node)
	if len(in.Endpoints) != 3 || in.Endpoints[0].HostIf != cni.HostVethName("c2", "eth0") {
		t.Fatalf("policy input %+v: want both local containers with their bridge ports", in.Endpoints)
	}
	if same := WithLocalAttachments(v, nil); len(same.Attachments) != 2 {
		t.Fatalf("no local registry: %+v", same.Attachments)
	}
}

// The engine's parse cache gives what a fresh parse gives: a policy whose
// stored bytes change (same name) is parsed again, one deleted is dropped.
func TestParsedCacheFollowsChanges(t *testing.T) {
	good := []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"x"},"spec":{"podSelector":{}}}`)
	bad := []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"x"},"spec":{"podSelector":{},"bogus":1}}`)
	cache := parsed{}
	for i, step := range []struct {
		json      []byte
		policies  int
		rejected  int
		cacheSize int
	}{{good, 1, 0, 1}, {good, 1, 0, 1}, {bad, 0, 1, 1}, {good, 1, 0, 1}, {nil, 0, 0, 0}} {
		v := workload.View{}
		if step.json != nil {
			v.Policies = []workload.Policy{{Namespace: "x", Name: "p", JSON: step.json}}
		}
		in, rej := cache.input(v, "n")
		if len(in.Policies) != step.policies || len(rej) != step.rejected || len(cache) != step.cacheSize {
			t.Fatalf("step %d: %d policies, %d rejected, cache %d; want %d, %d, %d", i, len(in.Policies), len(rej), len(cache), step.policies, step.rejected, step.cacheSize)
		}
	}
}

// TestDualStackRegistrationsCompile: a container registered once per
// address (workload keeps one attachment per address) is one container to
// policy: under deny-all both its addresses are isolated, and its bridge
// port is bound to both.
func TestDualStackRegistrationsCompile(t *testing.T) {
	v := workload.View{
		Attachments: []workload.Attachment{
			{IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", Pod: "a", Node: "192.0.2.1", ContainerID: "c1", IfName: "eth0"},
			{IP: netip.MustParseAddr("fd10:244:0:1::2"), Namespace: "x", Pod: "a", Node: "192.0.2.1", ContainerID: "c1", IfName: "eth0"},
			{IP: netip.MustParseAddr("fd10:244:0:2::2"), Namespace: "y", Pod: "b", Node: "192.0.2.2"},
		},
		Policies: []workload.Policy{{Namespace: "x", Name: "deny", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{},"policyTypes":["Ingress","Egress"]}}`)}},
	}
	in, rejected := Input(v, "192.0.2.1")
	if len(rejected) != 0 {
		t.Fatalf("rejected %+v", rejected)
	}
	rs, err := policy.Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Ingress) != 1 || len(rs.Egress) != 1 || len(rs.Ingress[0].Pods) != 2 || !rs.Ingress[0].Pods[1].Is6() {
		t.Fatalf("classes %+v / %+v: want x/a's two addresses isolated both ways", rs.Ingress, rs.Egress)
	}
	b6 := netip.MustParseAddr("fd10:244:0:2::2")
	if rs.Allows(b6, netip.MustParseAddr("fd10:244:0:1::2"), policy.ProtoTCP, 80) || rs.Allows(netip.MustParseAddr("fd10:244:0:1::2"), b6, policy.ProtoTCP, 80) {
		t.Error("IPv6 to or from x/a allowed under deny-all")
	}
	port := cni.HostVethName("c1", "eth0")
	var v4, v6 bool
	for _, s := range rs.Sources {
		if s.Port == port {
			v4 = v4 || s.IP.Is4()
			v6 = v6 || s.IPv6.Is6()
		}
	}
	if !v4 || !v6 {
		t.Fatalf("sources %+v: want %s bound to both addresses", rs.Sources, port)
	}
}
