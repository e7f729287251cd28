//go:build !unit

package e2e

import (
	"fmt"
	"testing"

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
	c := newCluster(t, 2, cluster.Options{NetworkConfig: dualStackConfig})
	e := &matrixEnv{t: t, c: c, dir: t.TempDir(), nsLabel: map[string]map[string]string{}, v6: true}
	e.etcd = etcdClientIn(t, c.Nodes[0].Host.NS, c.EtcdEndpoint())
	for _, ns := range []string{"x", "y", "z"} {
		e.weftctl("namespace", "label", ns, "ns="+ns)
		e.nsLabel[ns] = map[string]string{"ns": ns}
	}
	for i, ns := range []string{"x", "y", "z"} {
		for j, pod := range []string{"a", "b", "c"} {
			e.addPod(ns, pod, c.Nodes[(i*3+j)%2])
		}
	}
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
