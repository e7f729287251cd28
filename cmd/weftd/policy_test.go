package main

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/subnet"
)

func TestPolicyInputFromView(t *testing.T) {
	v := subnet.View{
		Endpoints: []subnet.Endpoint{
			{IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", Pod: "a", Labels: map[string]string{"app": "web"}, Node: "192.0.2.1", ContainerID: "c1", IfName: "eth0"},
			{IP: netip.MustParseAddr("10.244.2.2"), Namespace: "y", Pod: "b", Node: "192.0.2.2"},
		},
		Namespaces: []subnet.Namespace{{Name: "x", Labels: map[string]string{"team": "red"}}, {Name: "y"}},
		Policies:   []subnet.Policy{{Namespace: "x", Name: "deny", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{}}}`)}},
	}
	in, err := policyInput(v, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if in.Endpoints[0].HostIf != cni.HostVethName("c1", "eth0") || in.Endpoints[1].HostIf != "" {
		t.Errorf("host ports %q %q: want the plugin's veth name for the local container only", in.Endpoints[0].HostIf, in.Endpoints[1].HostIf)
	}
	if in.Node != "192.0.2.1" || len(in.Endpoints) != 2 || in.Endpoints[0].Name != "a" || in.Endpoints[0].Labels["app"] != "web" ||
		len(in.Namespaces) != 2 || in.Namespaces[0].Labels["team"] != "red" || len(in.Policies) != 1 || in.Policies[0].Name != "deny" {
		t.Fatalf("input %+v", in)
	}

	v.Policies = append(v.Policies,
		subnet.Policy{Namespace: "x", Name: "bad", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"bad","namespace":"x"},"spec":{"podSelector":{},"ingress":[{"ports":[{"port":"http"}]}]}}`)},
		subnet.Policy{Namespace: "x", Name: "other", JSON: []byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"x"},"spec":{"podSelector":{}}}`)},
	)
	_, err = policyInput(v, "192.0.2.1")
	if err == nil || !strings.Contains(err.Error(), "x/bad") || !strings.Contains(err.Error(), "x/other") {
		t.Fatalf("err %v, want both stored policies named", err)
	}
}

func TestWaitEnforced(t *testing.T) {
	p := newPolicyEngine("192.0.2.1", "weftbr0", slog.New(slog.DiscardHandler))
	ip := netip.MustParseAddr("10.244.1.2")
	done := make(chan error, 1)
	go func() { done <- p.waitEnforced(context.Background(), ip) }()
	p.markEnforced(map[netip.Addr]bool{netip.MustParseAddr("10.244.1.3"): true}) // another container
	select {
	case err := <-done:
		t.Fatalf("returned %v before the container's rules were in force", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.markEnforced(map[netip.Addr]bool{ip: true})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.waitEnforced(ctx, netip.MustParseAddr("10.244.1.9")); err == nil {
		t.Fatal("waited for a container never enforced and got nil")
	}
}
