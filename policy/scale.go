package policy

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// SyntheticWorld builds a reproducible cluster-sized Input for benchmarks:
// endpoints spread over nodes (node n's k-th endpoint is
// 10.(244+k/240).n.(10+k%240)), in namespaces ns0..ns4 with app and tier labels, and policies of
// the usual shapes (default deny, allow from a namespace, pod AND namespace,
// ipBlock with except, port ranges, egress to a namespace). Node "node0"
// is the one compiled for.
func SyntheticWorld(endpoints, policies, nodes int) Input {
	in := Input{Node: "node0"}
	for i := range 5 {
		in.Namespaces = append(in.Namespaces, Namespace{Name: fmt.Sprintf("ns%d", i), Labels: map[string]string{"team": fmt.Sprintf("t%d", i%3)}})
	}
	for i := range endpoints {
		node, k := i%nodes, i/nodes
		in.Endpoints = append(in.Endpoints, Endpoint{
			IP:        netip.AddrFrom4([4]byte{10, byte(244 + k/240), byte(node), byte(10 + k%240)}),
			Namespace: fmt.Sprintf("ns%d", i%5),
			Name:      fmt.Sprintf("pod%d", i),
			Labels:    map[string]string{"app": fmt.Sprintf("app%d", i%10), "tier": fmt.Sprintf("tier%d", i%3)},
			Node:      fmt.Sprintf("node%d", node),
		})
	}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p int32) *intstr.IntOrString { v := intstr.FromInt32(p); return &v }
	end := func(p int32) *int32 { return &p }
	for i := range policies {
		np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: fmt.Sprintf("ns%d", i%5)}}
		np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", i%10)}}
		switch i % 6 {
		case 0: // default deny ingress for the namespace
			np.Spec.PodSelector = metav1.LabelSelector{}
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		case 1: // from a namespace by label, one port
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("t%d", i%3)}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: port(8080)}},
			}}
		case 2: // pod AND namespace
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"t0", "t1"}}}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tier": fmt.Sprintf("tier%d", i%3)}},
				}},
			}}
		case 3: // ipBlock with except, port range
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{fmt.Sprintf("10.244.%d.0/24", i%4)}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: port(9000), EndPort: end(9100)}, {Protocol: &udp, Port: port(53)}},
			}}
		case 4: // egress to a namespace and DNS anywhere
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: fmt.Sprintf("ns%d", (i+1)%5)}}}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: port(53)}}},
			}
		case 5: // same namespace, by tier
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": fmt.Sprintf("tier%d", i%3)}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: port(443)}, {Protocol: &tcp, Port: port(80)}},
			}}
		}
		in.Policies = append(in.Policies, np)
	}
	return in
}

// PeersTimesPorts is a policy of namespace that isolates all its pods for
// ingress and admits, in one rule, peers ipBlocks (/32s at every other
// address from 172.16.0.0, so none merge) plus also's addresses, on ports
// TCP ports (every other port from 1000, so none merge) plus TCP 80: the
// shape that once compiled to peers x ports boxes.
func PeersTimesPorts(namespace string, peers, ports int, also []netip.Addr) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "peers-times-ports", Namespace: namespace}}
	np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	var rule networkingv1.NetworkPolicyIngressRule
	for i := range peers {
		a := u32Addr(addrU32(netip.AddrFrom4([4]byte{172, 16, 0, 0})) + uint32(2*i))
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: a.String() + "/32"}})
	}
	for _, a := range also {
		rule.From = append(rule.From, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: a.String() + "/32"}})
	}
	tcp := corev1.ProtocolTCP
	for i := range ports {
		p := intstr.FromInt32(int32(1000 + 2*i))
		rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p})
	}
	p80 := intstr.FromInt32(80)
	rule.Ports = append(rule.Ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p80})
	np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{rule}
	return np
}
