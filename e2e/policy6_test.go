//go:build !unit

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// dualStackConfig is issue 21's acceptance network on weft's udp backend.
const dualStackConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp","Port":8285}}`

// TestPolicyConformanceMatrixIPv6 is the conformance matrix over the pods'
// IPv6 addresses, across two hosts of a dual-stack network: the same
// namespaces and pods, each probe between two pods over IPv6 compared with
// the reference model (policy.Reachable, given both addresses of every
// pod), for the policy cases whose meaning does not depend on the family
// and for IPv6 ipBlocks.
func TestPolicyConformanceMatrixIPv6(t *testing.T) {
	policyConformanceMatrixIPv6(t, newCluster(t, 2, cluster.Options{NetworkConfig: dualStackConfig}))
}

// The same matrix on the other backends whose data path differs from
// udp's in how an IPv6 packet reaches the other node: host-gw (kernel
// routes via the peer's IPv6 underlay address: the hosts get 2001:db8::i)
// and wireguard (one wireguard-go device, allowed IPs of both families).
// The policy is enforced on the bridge's forward path of each node
// whatever carries the packet between nodes; these runs show it.
func TestPolicyConformanceMatrixIPv6HostGW(t *testing.T) {
	policyConformanceMatrixIPv6(t, dualStackClusterOn(t, "host-gw"))
}

func TestPolicyConformanceMatrixIPv6WireGuard(t *testing.T) {
	policyConformanceMatrixIPv6(t, dualStackClusterOn(t, "wireguard"))
}

// dualStackClusterOn is a running two-node cluster of issue 21's network
// on backend, over a dual-stack underlay.
func dualStackClusterOn(t *testing.T, backend string) *cluster.Cluster {
	t.Helper()
	bed := testbed.ForTestWith(t, "wp6", 2, testbed.Options{IPv6: true})
	c := newStoppedClusterOn(t, bed, cluster.Options{NetworkConfig: issue21Network(backend)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, c, 1)
	// The path node 1 takes to node 2's IPv6 subnet is the backend's.
	env, err := c.Nodes[1].Subnet()
	if err != nil {
		t.Fatal(err)
	}
	dst := env.IPv6Subnet.Masked().Addr().Next().Next()
	want := map[string]string{"host-gw": "via " + c.Nodes[1].Host.IPv6.String(), "wireguard": "dev weft0"}[backend]
	if route := runIn(t, ctx, c.Nodes[0].Host.NS, "ip", "-6", "route", "get", dst.String()); !strings.Contains(route, want) {
		t.Fatalf("node 1's route to %s: %q, want %q", dst, route, want)
	}
	return c
}

func policyConformanceMatrixIPv6(t *testing.T, c *cluster.Cluster) {
	e := newMatrixEnv(t, c)
	e.v6 = true
	e.addMatrixPods()
	var yb *podRef
	for _, p := range e.pods {
		if p.ns == "y" && p.name == "b" {
			yb = p
		}
	}
	e.check("no policy (IPv6)")
	cases := []struct{ name, yaml string }{
		{"deny all ingress", npYAML("x", "deny-ingress", "  podSelector: {}\n  policyTypes: [Ingress]")},
		{"deny all egress", npYAML("x", "deny-egress", "  podSelector: {}\n  policyTypes: [Egress]")},
		{"pod AND namespace selector", npYAML("x", "and", "  podSelector:\n    matchLabels: {pod: a}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {ns: \"y\"}\n      podSelector:\n        matchLabels: {pod: b}")},
		{"IPv6 ipBlock with except", npYAML("x", "ipblock6", fmt.Sprintf("  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: \"fd10:244::/56\"\n        except: [\"%s/128\"]", yb.ip6))},
		{"IPv4 ipBlock only", npYAML("x", "ipblock4", "  podSelector: {}\n  ingress:\n  - from:\n    - ipBlock:\n        cidr: 10.0.0.0/8")},
		{"a port range, egress to one namespace", npYAML("y", "range", "  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {ns: z}}\n    ports:\n    - port: 80\n      endPort: 81\n      protocol: UDP\n  egress:\n  - to:\n    - namespaceSelector: {matchLabels: {ns: z}}")},
	}
	for _, tc := range cases {
		e.apply(tc.name, tc.yaml)
		e.check(tc.name + " (IPv6)")
		if tc.name == "deny all ingress" {
			e.v6 = false
			e.check(tc.name + " (IPv4, same cluster)")
			e.v6 = true
		}
		e.deleteAll()
	}
}
