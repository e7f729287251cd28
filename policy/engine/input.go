package engine

import (
	"bytes"
	"net/netip"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/weftnet/weft/cni"
	"github.com/weftnet/weft/policy"
	"github.com/weftnet/weft/workload"
)

// WithLocalAttachments returns v with this node's containers as the local
// registry holds them: the etcd view loses them when the node's endpoint
// lease expires (an etcd partition longer than --endpoint-ttl) until weftd
// publishes them again, and this node's own rules must not drop them
// meanwhile (a container isolated by policy would be open). An endpoint of
// the registry replaces the view's of the same IP (addresses of this
// node's subnet are its own); the view's others stay. v is not modified.
func WithLocalAttachments(v workload.View, local []workload.Attachment) workload.View {
	if len(local) == 0 {
		return v
	}
	mine := make(map[netip.Addr]bool, len(local))
	for _, ep := range local {
		mine[ep.IP] = true
	}
	eps := make([]workload.Attachment, 0, len(v.Attachments)+len(local))
	for _, ep := range v.Attachments {
		if !mine[ep.IP] {
			eps = append(eps, ep)
		}
	}
	eps = append(eps, local...)
	sort.Slice(eps, func(i, j int) bool { return eps[i].IP.Less(eps[j].IP) })
	v.Attachments = eps
	return v
}

// Input converts the stored view into policy.Input. A stored policy that
// does not parse or validate (policy.CheckStored; weftctl validates before
// storing, so only a foreign writer can cause this) is left out and
// returned as rejected, and its namespace fails closed
// (policy.Input.FailClosed): every other policy still applies.
func Input(v workload.View, node string) (policy.Input, []Rejected) {
	return (*parsed)(nil).input(v, node)
}

// parsed remembers the stored policies as last parsed (policy.CheckStored
// of a 100 KB manifest takes a fifth of a second, and every view, every
// local ADD and DEL, rebuilds with all of them): by namespace/name, reused
// while the stored bytes are the same. Only the engine's goroutine uses it.
type parsed map[string]parsedPolicy

type parsedPolicy struct {
	json []byte
	np   networkingv1.NetworkPolicy
	err  error
}

// input is Input, parsing only what changed since the last call (p nil:
// everything) and keeping only the view's policies in p.
func (p *parsed) input(v workload.View, node string) (policy.Input, []Rejected) {
	in := policy.Input{Node: node}
	for _, ep := range v.Attachments {
		pe := policy.Endpoint{IP: ep.IP, Namespace: ep.Namespace, Name: ep.Pod, Labels: ep.Labels, Node: ep.Node}
		if ep.Node == node && ep.ContainerID != "" && ep.IfName != "" {
			pe.HostIf = cni.HostVethName(ep.ContainerID, ep.IfName) // the plugin's name for the host side
		}
		in.Endpoints = append(in.Endpoints, pe)
	}
	for _, ns := range v.Namespaces {
		in.Namespaces = append(in.Namespaces, policy.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	var rejected []Rejected
	failed := map[string]bool{}
	var next parsed
	if p != nil {
		next = make(parsed, len(v.Policies))
		defer func() { *p = next }()
	}
	for _, sp := range v.Policies {
		key := sp.Namespace + "/" + sp.Name
		pp, ok := parsedPolicy{}, false
		if p != nil {
			pp, ok = (*p)[key]
			ok = ok && bytes.Equal(pp.json, sp.JSON)
		}
		if !ok {
			pp.json = sp.JSON
			pp.np, pp.err = policy.CheckStored(sp.Namespace, sp.Name, sp.JSON)
		}
		if next != nil {
			next[key] = pp
		}
		np, err := pp.np, pp.err
		if err != nil {
			rejected = append(rejected, Rejected{Namespace: sp.Namespace, Name: sp.Name, Reason: err.Error()})
			if !failed[sp.Namespace] {
				failed[sp.Namespace] = true
				in.FailClosed = append(in.FailClosed, sp.Namespace)
			}
			continue
		}
		in.Policies = append(in.Policies, np)
	}
	return in, rejected
}
