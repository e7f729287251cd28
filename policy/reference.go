package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Reachable is the reference model of Kubernetes' semantics, written
// directly from the API documentation and sharing nothing with Compile but
// label matching: may a new connection from src to dst (protocol proto,
// destination port port; proto 0 for a protocol without ports) pass, for
// the whole cluster (src's egress policies and dst's ingress policies,
// wherever they run)? Tests compare Compile and the kernel against it.
// Policies must be valid; invalid selectors select nothing.
func Reachable(in Input, src, dst netip.Addr, proto uint8, port uint16) bool {
	nsLabels := func(name string) labels.Set {
		set := labels.Set{NamespaceNameLabel: name}
		for _, ns := range in.Namespaces {
			if ns.Name == name {
				for k, v := range ns.Labels {
					set[k] = v
				}
				set[NamespaceNameLabel] = name
			}
		}
		return set
	}
	find := func(a netip.Addr) *Endpoint {
		for i := range in.Endpoints {
			if slices.Contains(in.Endpoints[i].Addrs(), a) {
				return &in.Endpoints[i]
			}
		}
		return nil
	}
	selects := func(sel *metav1.LabelSelector, set labels.Set) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		return err == nil && s.Matches(set)
	}
	peerMatches := func(policyNS string, peer networkingv1.NetworkPolicyPeer, a netip.Addr) bool {
		if peer.IPBlock != nil {
			cidr, err := parsePrefix(peer.IPBlock.CIDR)
			if err != nil || !cidr.Contains(a) {
				return false
			}
			for _, e := range peer.IPBlock.Except {
				if ex, err := parsePrefix(e); err == nil && ex.Contains(a) {
					return false
				}
			}
			return true
		}
		ep := find(a)
		if ep == nil {
			return false
		}
		if peer.NamespaceSelector == nil {
			if ep.Namespace != policyNS {
				return false
			}
		} else if !selects(peer.NamespaceSelector, nsLabels(ep.Namespace)) {
			return false
		}
		return peer.PodSelector == nil || selects(peer.PodSelector, labels.Set(ep.Labels))
	}
	portMatches := func(ports []networkingv1.NetworkPolicyPort) bool {
		if len(ports) == 0 {
			return true
		}
		for _, p := range ports {
			want := uint8(ProtoTCP)
			if p.Protocol != nil && *p.Protocol == corev1.ProtocolUDP {
				want = ProtoUDP
			}
			if p.Protocol != nil && *p.Protocol == corev1.ProtocolSCTP {
				want = ProtoSCTP
			}
			if proto != want {
				continue
			}
			if p.Port == nil {
				return true
			}
			lo, hi := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil {
				hi = *p.EndPort
			}
			if int32(port) >= lo && int32(port) <= hi {
				return true
			}
		}
		return false
	}
	hasType := func(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
		types := np.Spec.PolicyTypes
		if len(types) == 0 { // API server default
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(np.Spec.Egress) > 0 {
				types = append(types, networkingv1.PolicyTypeEgress)
			}
		}
		for _, x := range types {
			if x == t {
				return true
			}
		}
		return false
	}
	nsOf := func(np *networkingv1.NetworkPolicy) string {
		if np.Namespace == "" {
			return DefaultNamespace
		}
		return np.Namespace
	}
	// allowedBy: is pod ep, in direction t, with peer address, allowed?
	allowed := func(ep *Endpoint, t networkingv1.PolicyType, peer netip.Addr) bool {
		if ep == nil {
			return true
		}
		isolated := false
		for i := range in.Policies {
			np := &in.Policies[i]
			if nsOf(np) != ep.Namespace || !hasType(np, t) || !selects(&np.Spec.PodSelector, labels.Set(ep.Labels)) {
				continue
			}
			isolated = true
			if t == networkingv1.PolicyTypeIngress {
				for _, r := range np.Spec.Ingress {
					if !portMatches(r.Ports) {
						continue
					}
					if len(r.From) == 0 {
						return true
					}
					for _, p := range r.From {
						if peerMatches(nsOf(np), p, peer) {
							return true
						}
					}
				}
			} else {
				for _, r := range np.Spec.Egress {
					if !portMatches(r.Ports) {
						continue
					}
					if len(r.To) == 0 {
						return true
					}
					for _, p := range r.To {
						if peerMatches(nsOf(np), p, peer) {
							return true
						}
					}
				}
			}
		}
		return !isolated
	}
	return allowed(find(src), networkingv1.PolicyTypeEgress, dst) && allowed(find(dst), networkingv1.PolicyTypeIngress, src)
}
